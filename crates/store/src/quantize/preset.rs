//! llama-quantize's presets (tools/quantize/quantize.cpp `QUANT_OPTIONS`) and the
//! `general.file_type` ids they write (llama.h `enum llama_ftype`).

use gguf::TensorType;

/// A quantization preset: a file type whose tensors llama-quantize mixes by rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Preset {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q2_K_S,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
    IQ1_S,
    IQ1_M,
    IQ2_XXS,
    IQ2_XS,
    IQ2_S,
    IQ2_M,
    IQ3_XXS,
    IQ3_XS,
    IQ3_S,
    IQ3_M,
    IQ4_NL,
    IQ4_XS,
    TQ1_0,
    TQ2_0,
    /// Every tensor copied as it is (llama-quantize's `COPY`).
    Copy,
}

/// llama-quantize's names, in its order, with the aliases (`Q4_K` is `Q4_K_M`).
const NAMES: &[(&str, Preset)] = &[
    ("Q4_0", Preset::Q4_0),
    ("Q4_1", Preset::Q4_1),
    ("Q5_0", Preset::Q5_0),
    ("Q5_1", Preset::Q5_1),
    ("IQ2_XXS", Preset::IQ2_XXS),
    ("IQ2_XS", Preset::IQ2_XS),
    ("IQ2_S", Preset::IQ2_S),
    ("IQ2_M", Preset::IQ2_M),
    ("IQ1_S", Preset::IQ1_S),
    ("IQ1_M", Preset::IQ1_M),
    ("TQ1_0", Preset::TQ1_0),
    ("TQ2_0", Preset::TQ2_0),
    ("Q2_K", Preset::Q2_K),
    ("Q2_K_S", Preset::Q2_K_S),
    ("IQ3_XXS", Preset::IQ3_XXS),
    ("IQ3_S", Preset::IQ3_S),
    ("IQ3_M", Preset::IQ3_M),
    ("Q3_K", Preset::Q3_K_M),
    ("IQ3_XS", Preset::IQ3_XS),
    ("Q3_K_S", Preset::Q3_K_S),
    ("Q3_K_M", Preset::Q3_K_M),
    ("Q3_K_L", Preset::Q3_K_L),
    ("IQ4_NL", Preset::IQ4_NL),
    ("IQ4_XS", Preset::IQ4_XS),
    ("Q4_K", Preset::Q4_K_M),
    ("Q4_K_S", Preset::Q4_K_S),
    ("Q4_K_M", Preset::Q4_K_M),
    ("Q5_K", Preset::Q5_K_M),
    ("Q5_K_S", Preset::Q5_K_S),
    ("Q5_K_M", Preset::Q5_K_M),
    ("Q6_K", Preset::Q6_K),
    ("Q8_0", Preset::Q8_0),
    ("F16", Preset::F16),
    ("BF16", Preset::BF16),
    ("F32", Preset::F32),
    ("COPY", Preset::Copy),
];

impl Preset {
    /// The preset named `name` (case-insensitive, aliases included) or numbered
    /// `name` by its file type id, as llama-quantize parses its argument.
    pub fn parse(name: &str) -> Option<Preset> {
        if let Some((_, p)) = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Some(*p);
        }
        let id: u32 = name.parse().ok()?;
        NAMES.iter().map(|(_, p)| *p).find(|p| p.file_type() == id)
    }

    /// Every preset's canonical name, in llama-quantize's order (for help texts).
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(n, _)| *n)
    }

    /// The canonical name (`Q4_K_M` for `Q4_K`).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .rev()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .expect("every preset is named")
    }

    /// `general.file_type` (llama.h `enum llama_ftype`).
    pub fn file_type(self) -> u32 {
        use Preset::*;
        match self {
            F32 | Copy => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q8_0 => 7,
            Q5_0 => 8,
            Q5_1 => 9,
            Q2_K => 10,
            Q3_K_S => 11,
            Q3_K_M => 12,
            Q3_K_L => 13,
            Q4_K_S => 14,
            Q4_K_M => 15,
            Q5_K_S => 16,
            Q5_K_M => 17,
            Q6_K => 18,
            IQ2_XXS => 19,
            IQ2_XS => 20,
            Q2_K_S => 21,
            IQ3_XS => 22,
            IQ3_XXS => 23,
            IQ1_S => 24,
            IQ4_NL => 25,
            IQ3_S => 26,
            IQ3_M => 27,
            IQ2_S => 28,
            IQ2_M => 29,
            IQ4_XS => 30,
            IQ1_M => 31,
            BF16 => 32,
            TQ1_0 => 36,
            TQ2_0 => 37,
        }
    }

    /// The type most tensors get (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> TensorType {
        use Preset::*;
        match self {
            F32 | Copy => TensorType::F32,
            F16 => TensorType::F16,
            BF16 => TensorType::BF16,
            Q4_0 => TensorType::Q4_0,
            Q4_1 => TensorType::Q4_1,
            Q5_0 => TensorType::Q5_0,
            Q5_1 => TensorType::Q5_1,
            Q8_0 => TensorType::Q8_0,
            Q2_K | Q2_K_S => TensorType::Q2_K,
            IQ3_XS | IQ3_S | IQ3_M => TensorType::IQ3_S,
            Q3_K_S | Q3_K_M | Q3_K_L => TensorType::Q3_K,
            Q4_K_S | Q4_K_M => TensorType::Q4_K,
            Q5_K_S | Q5_K_M => TensorType::Q5_K,
            Q6_K => TensorType::Q6_K,
            TQ1_0 => TensorType::TQ1_0,
            TQ2_0 => TensorType::TQ2_0,
            IQ2_XXS => TensorType::IQ2_XXS,
            IQ2_XS | IQ2_S => TensorType::IQ2_XS,
            IQ2_M => TensorType::IQ2_S,
            IQ3_XXS => TensorType::IQ3_XXS,
            IQ1_S => TensorType::IQ1_S,
            IQ1_M => TensorType::IQ1_M,
            IQ4_NL => TensorType::IQ4_NL,
            IQ4_XS => TensorType::IQ4_XS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_ids_parse_as_llama_quantize_does() {
        assert_eq!(Preset::parse("q4_k_m"), Some(Preset::Q4_K_M));
        assert_eq!(Preset::parse("Q4_K"), Some(Preset::Q4_K_M));
        assert_eq!(Preset::parse("15"), Some(Preset::Q4_K_M));
        assert_eq!(
            Preset::parse("0"),
            Some(Preset::F32),
            "F32 comes before COPY"
        );
        assert_eq!(Preset::parse("Q4_K_X"), None);
        assert_eq!(Preset::parse("4"), None, "retired id");
        assert_eq!(Preset::Q3_K_M.name(), "Q3_K_M");
        for name in Preset::names() {
            let p = Preset::parse(name).unwrap();
            assert_eq!(Preset::parse(p.name()), Some(p));
        }
    }
}
