//! The key/value metadata of a GGUF file, in file order, with typed accessors.

use std::collections::HashMap;

use crate::{Array, Error, Value};

/// Metadata entries in the order the file stores them, with lookup by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

/// Defines `get_*` (required) and `opt_*` (optional) accessors for one type.
macro_rules! accessors {
    ($(#[$doc:meta] $get:ident, $opt:ident, $conv:ident -> $t:ty;)*) => {$(
        #[$doc]
        ///
        /// `Err(MissingKey)` when absent, `Err(WrongType)` when the stored type differs.
        pub fn $get(&self, key: &str) -> Result<$t, Error> {
            self.$opt(key)?.ok_or_else(|| Error::MissingKey { key: key.to_owned() })
        }

        #[$doc]
        ///
        /// `Ok(None)` when absent, `Err(WrongType)` when the stored type differs.
        pub fn $opt(&self, key: &str) -> Result<Option<$t>, Error> {
            self.get(key).map(|v| $conv(key, v)).transpose()
        }
    )*};
}

impl Metadata {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry; `Err(DuplicateKey)` if the key is already present.
    pub fn insert(&mut self, key: String, value: Value) -> Result<(), Error> {
        if self.index.contains_key(&key) {
            return Err(Error::DuplicateKey { key });
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// Sets `key` to `value`, replacing an existing entry in place or appending a new one.
    pub fn set(&mut self, key: &str, value: Value) {
        match self.index.get(key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.to_owned(), self.entries.len());
                self.entries.push((key.to_owned(), value));
            }
        }
    }

    /// Removes `key` if present, keeping the order of the other entries (ggml's
    /// `gguf_remove_key`); returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.index.remove(key)?;
        let (_, value) = self.entries.remove(i);
        for slot in self.index.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        Some(value)
    }

    /// Sets `key` to `value` as the last entry, moving it there if it was present
    /// (ggml's `gguf_set_val_*`, which removes then appends).
    pub fn set_last(&mut self, key: &str, value: Value) {
        self.remove(key);
        self.index.insert(key.to_owned(), self.entries.len());
        self.entries.push((key.to_owned(), value));
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    accessors! {
        /// An integer of any type whose value fits in `u32`.
        get_u32, opt_u32, to_u32 -> u32;
        /// An integer of any type whose value fits in `u64`.
        get_u64, opt_u64, to_u64 -> u64;
        /// An integer of any type whose value fits in `i32`.
        get_i32, opt_i32, to_i32 -> i32;
        /// An `f32`, or an `f64` rounded to `f32`.
        get_f32, opt_f32, to_f32 -> f32;
        /// A `bool`.
        get_bool, opt_bool, to_bool -> bool;
    }

    /// A string.
    ///
    /// `Err(MissingKey)` when absent, `Err(WrongType)` when the stored type differs.
    pub fn get_str(&self, key: &str) -> Result<&str, Error> {
        self.opt_str(key)?.ok_or_else(|| missing(key))
    }

    /// A string; `Ok(None)` when absent, `Err(WrongType)` when the stored type differs.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(key, "string", v)),
        }
    }

    /// An array of any element type.
    ///
    /// `Err(MissingKey)` when absent, `Err(WrongType)` when the value is not an array.
    pub fn get_array(&self, key: &str) -> Result<&Array, Error> {
        match self.get(key) {
            None => Err(missing(key)),
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(wrong_type(key, "array", v)),
        }
    }

    /// An array of strings.
    ///
    /// `Err(MissingKey)` when absent, `Err(WrongType)` when the stored type differs.
    pub fn get_str_array(&self, key: &str) -> Result<&[String], Error> {
        self.opt_str_array(key)?.ok_or_else(|| missing(key))
    }

    /// An array of strings; `Ok(None)` when absent, `Err(WrongType)` when the type differs.
    pub fn opt_str_array(&self, key: &str) -> Result<Option<&[String]>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::String(v))) => Ok(Some(v)),
            Some(v) => Err(wrong_type(key, "array[string]", v)),
        }
    }

    /// An array of `f32`.
    ///
    /// `Err(MissingKey)` when absent, `Err(WrongType)` when the stored type differs.
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], Error> {
        self.opt_f32_array(key)?.ok_or_else(|| missing(key))
    }

    /// An array of `f32`; `Ok(None)` when absent, `Err(WrongType)` when the type differs.
    pub fn opt_f32_array(&self, key: &str) -> Result<Option<&[f32]>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::F32(v))) => Ok(Some(v)),
            Some(v) => Err(wrong_type(key, "array[f32]", v)),
        }
    }

    /// An array of `i32`.
    ///
    /// `Err(MissingKey)` when absent, `Err(WrongType)` when the stored type differs.
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32], Error> {
        self.opt_i32_array(key)?.ok_or_else(|| missing(key))
    }

    /// An array of `i32`; `Ok(None)` when absent, `Err(WrongType)` when the type differs.
    pub fn opt_i32_array(&self, key: &str) -> Result<Option<&[i32]>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(Array::I32(v))) => Ok(Some(v)),
            Some(v) => Err(wrong_type(key, "array[i32]", v)),
        }
    }
}

fn missing(key: &str) -> Error {
    Error::MissingKey {
        key: key.to_owned(),
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &Value) -> Error {
    let found = match found.as_integer() {
        Some(n) => format!("{} {n}", found.type_name()),
        None => found.type_name(),
    };
    Error::WrongType {
        key: key.to_owned(),
        expected,
        found,
    }
}

fn integer<T: TryFrom<i128>>(key: &str, v: &Value, expected: &'static str) -> Result<T, Error> {
    v.as_integer()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| wrong_type(key, expected, v))
}

fn to_u32(key: &str, v: &Value) -> Result<u32, Error> {
    integer(key, v, "u32")
}

fn to_u64(key: &str, v: &Value) -> Result<u64, Error> {
    integer(key, v, "u64")
}

fn to_i32(key: &str, v: &Value) -> Result<i32, Error> {
    integer(key, v, "i32")
}

fn to_f32(key: &str, v: &Value) -> Result<f32, Error> {
    match *v {
        Value::F32(x) => Ok(x),
        // Rounding to nearest is the intended conversion for f64-stored hyper-parameters.
        Value::F64(x) => Ok(x as f32),
        _ => Err(wrong_type(key, "f32", v)),
    }
}

fn to_bool(key: &str, v: &Value) -> Result<bool, Error> {
    match *v {
        Value::Bool(b) => Ok(b),
        _ => Err(wrong_type(key, "bool", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut m = Metadata::new();
        let entries = [
            ("ctx32", Value::U32(4096)),
            ("ctx64", Value::U64(131072)),
            ("neg", Value::I64(-3)),
            ("big", Value::U64(u64::MAX)),
            ("eps", Value::F64(1e-5)),
            ("name", Value::String("llama".into())),
            ("flag", Value::Bool(true)),
            ("heads", Value::Array(Array::I32(vec![8, 8, 4]))),
            (
                "tokens",
                Value::Array(Array::String(vec!["a".into(), "b".into()])),
            ),
        ];
        for (k, v) in entries {
            m.insert(k.into(), v).unwrap();
        }
        m
    }

    #[test]
    fn integers_convert_when_lossless() {
        let m = sample();
        assert_eq!(m.get_u32("ctx32").unwrap(), 4096);
        assert_eq!(m.get_u32("ctx64").unwrap(), 131072);
        assert_eq!(m.get_u64("ctx32").unwrap(), 4096);
        assert_eq!(m.get_i32("neg").unwrap(), -3);
        assert_eq!(m.get_u64("big").unwrap(), u64::MAX);
        match m.get_u32("neg") {
            Err(Error::WrongType {
                key,
                expected: "u32",
                found,
            }) => {
                assert_eq!(key, "neg");
                assert_eq!(found, "i64 -3");
            }
            other => panic!("expected WrongType, got {other:?}"),
        }
        assert!(matches!(m.get_i32("big"), Err(Error::WrongType { .. })));
        assert!(matches!(m.get_u32("name"), Err(Error::WrongType { .. })));
    }

    #[test]
    fn missing_and_optional_keys() {
        let m = sample();
        assert!(matches!(m.get_u32("nope"), Err(Error::MissingKey { key }) if key == "nope"));
        assert_eq!(m.opt_u32("nope").unwrap(), None);
        assert_eq!(m.opt_str("name").unwrap(), Some("llama"));
        assert!(matches!(m.opt_str("flag"), Err(Error::WrongType { .. })));
        assert!(m.opt_bool("flag").unwrap().unwrap());
        assert_eq!(m.get_f32("eps").unwrap(), 1e-5f32);
    }

    #[test]
    fn arrays_by_element_type() {
        let m = sample();
        assert_eq!(m.get_i32_array("heads").unwrap(), &[8, 8, 4]);
        assert_eq!(m.get_str_array("tokens").unwrap(), &["a", "b"]);
        assert_eq!(m.get_array("heads").unwrap().len(), 3);
        match m.get_f32_array("tokens") {
            Err(Error::WrongType { found, .. }) => assert_eq!(found, "array[string]"),
            other => panic!("expected WrongType, got {other:?}"),
        }
        assert_eq!(m.opt_f32_array("nope").unwrap(), None);
    }

    #[test]
    fn order_is_kept_and_duplicates_rejected() {
        let mut m = sample();
        let keys: Vec<_> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys[..3], ["ctx32", "ctx64", "neg"]);
        assert!(matches!(
            m.insert("name".into(), Value::U8(1)),
            Err(Error::DuplicateKey { .. })
        ));
        m.set("name", Value::U8(1));
        assert_eq!(m.get("name"), Some(&Value::U8(1)));
        assert_eq!(m.iter().nth(5).map(|(k, _)| k), Some("name"));
        assert_eq!(m.len(), 9);
        assert!(m.contains("flag") && !m.is_empty());
    }

    #[test]
    fn remove_and_set_last_reorder_as_ggml_does() {
        let mut m = sample();
        let before: Vec<String> = m.iter().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(m.remove("ctx64"), Some(Value::U64(131072)));
        assert_eq!(m.remove("ctx64"), None);
        let after: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        let expected: Vec<&str> = before
            .iter()
            .map(String::as_str)
            .filter(|k| *k != "ctx64")
            .collect();
        assert_eq!(after, expected);
        assert_eq!(
            m.get("neg"),
            Some(&Value::I64(-3)),
            "index follows the shift"
        );
        assert!(matches!(m.get("tokens"), Some(Value::Array(Array::String(v))) if v.len() == 2));
        m.set_last("ctx32", Value::U32(7));
        assert_eq!(m.iter().last(), Some(("ctx32", &Value::U32(7))));
        assert_eq!(m.len(), before.len() - 1);
        assert_eq!(m.get_u32("ctx32").unwrap(), 7);
    }
}
