//! Human-readable numbers and metadata values for `hearth show`.

use gguf::{Array, Value};

/// Arrays longer than this are summarised.
const MAX_ARRAY_ITEMS: usize = 8;
/// Items shown of a summarised array.
const SUMMARY_ITEMS: usize = 3;
/// Strings longer than this many characters are cut.
const MAX_STRING_CHARS: usize = 60;

/// A count with three significant digits and a K/M/B/T suffix: "1.24B", "3.2M", "512".
pub fn count(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    for (scale, suffix) in UNITS {
        if n as f64 >= scale {
            return format!("{}{suffix}", three_digits(n as f64 / scale));
        }
    }
    n.to_string()
}

/// Bytes in binary units: "1.50 GiB", "312 B".
pub fn bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (scale, suffix) in UNITS {
        if n >= scale {
            return format!("{:.2} {suffix}", n as f64 / scale as f64);
        }
    }
    format!("{n} B")
}

/// `x` (at least 1) with three significant digits, trailing zeros dropped.
fn three_digits(x: f64) -> String {
    let decimals = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A metadata value on one line; long arrays become `[a, b, c, ... (N items)]` and
/// long strings are cut.
pub fn value(v: &Value) -> String {
    match v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
        Value::String(s) => string(s),
        Value::Array(a) => array(a),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
    }
}

/// A quoted, escaped string, cut after [`MAX_STRING_CHARS`] characters.
fn string(s: &str) -> String {
    let n_chars = s.chars().count();
    if n_chars <= MAX_STRING_CHARS {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(MAX_STRING_CHARS).collect();
    format!("{head:?}... ({} bytes)", s.len())
}

fn array(a: &Array) -> String {
    let items = |f: &dyn Fn(usize) -> String| {
        let n = a.len();
        let shown = if n > MAX_ARRAY_ITEMS {
            SUMMARY_ITEMS
        } else {
            n
        };
        let mut parts: Vec<String> = (0..shown).map(f).collect();
        if n > MAX_ARRAY_ITEMS {
            parts.push(format!("... ({n} items)"));
        }
        format!("[{}]", parts.join(", "))
    };
    match a {
        Array::U8(v) => items(&|i| v[i].to_string()),
        Array::I8(v) => items(&|i| v[i].to_string()),
        Array::U16(v) => items(&|i| v[i].to_string()),
        Array::I16(v) => items(&|i| v[i].to_string()),
        Array::U32(v) => items(&|i| v[i].to_string()),
        Array::I32(v) => items(&|i| v[i].to_string()),
        Array::F32(v) => items(&|i| v[i].to_string()),
        Array::Bool(v) => items(&|i| v[i].to_string()),
        Array::String(v) => items(&|i| string(&v[i])),
        Array::Array(v) => items(&|i| array(&v[i])),
        Array::U64(v) => items(&|i| v[i].to_string()),
        Array::I64(v) => items(&|i| v[i].to_string()),
        Array::F64(v) => items(&|i| v[i].to_string()),
    }
}

/// llama.cpp's name for a `general.file_type` (`llama_ftype_name` in
/// src/llama-model-loader.cpp; ids from `enum llama_ftype` in llama.h).
pub fn file_type_name(ftype: u32) -> Option<&'static str> {
    Some(match ftype {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        19 => "IQ2_XXS - 2.0625 bpw",
        20 => "IQ2_XS - 2.3125 bpw",
        21 => "Q2_K - Small",
        22 => "IQ3_XS - 3.3 bpw",
        23 => "IQ3_XXS - 3.0625 bpw",
        24 => "IQ1_S - 1.5625 bpw",
        25 => "IQ4_NL - 4.5 bpw",
        26 => "IQ3_S - 3.4375 bpw",
        27 => "IQ3_S mix - 3.66 bpw",
        28 => "IQ2_S - 2.5 bpw",
        29 => "IQ2_M - 2.7 bpw",
        30 => "IQ4_XS - 4.25 bpw",
        31 => "IQ1_M - 1.75 bpw",
        32 => "BF16",
        36 => "TQ1_0 - 1.69 bpw ternary",
        37 => "TQ2_0 - 2.06 bpw ternary",
        38 => "MXFP4 MoE",
        39 => "NVFP4",
        40 => "Q1_0",
        41 => "Q2_0",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_three_significant_digits() {
        assert_eq!(count(1_235_814_400), "1.24B");
        assert_eq!(count(3_200_000), "3.2M");
        assert_eq!(count(96_512), "96.5K");
        assert_eq!(count(123_400_000), "123M");
        assert_eq!(count(1_000), "1K");
        assert_eq!(count(999), "999");
        assert_eq!(count(8_030_261_248), "8.03B");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(312), "312 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
    }

    #[test]
    fn long_arrays_and_strings_are_summarised() {
        let short = Value::Array(Array::I32(vec![1, 2, 3]));
        assert_eq!(value(&short), "[1, 2, 3]");
        let tokens = Array::String((0..10).map(|i| format!("t{i}")).collect());
        assert_eq!(
            value(&Value::Array(tokens)),
            r#"["t0", "t1", "t2", ... (10 items)]"#
        );
        let nested = Array::Array(vec![Array::U8(vec![1]), Array::Bool(vec![true])]);
        assert_eq!(value(&Value::Array(nested)), "[[1], [true]]");
        let long = "x".repeat(100);
        assert_eq!(
            value(&Value::String(long)),
            format!("{:?}... (100 bytes)", "x".repeat(60))
        );
        assert_eq!(value(&Value::String("a\nb".into())), r#""a\nb""#);
    }

    #[test]
    fn file_types_use_llama_cpp_names() {
        assert_eq!(file_type_name(15), Some("Q4_K - Medium"));
        assert_eq!(file_type_name(7), Some("Q8_0"));
        assert_eq!(file_type_name(4), None);
    }
}
