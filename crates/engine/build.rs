//! Build script: whether llama.cpp's vocabularies are there to test against
//! (`hearth_llama_vocabs`, from `HEARTH_LLAMA_VOCAB_DIR`, which tools/test.sh
//! sets), as in crates/model/build.rs.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=HEARTH_LLAMA_VOCAB_DIR");
    println!("cargo::rustc-check-cfg=cfg(hearth_llama_vocabs)");
    if std::env::var_os("HEARTH_LLAMA_VOCAB_DIR").is_some() {
        println!("cargo::rustc-cfg=hearth_llama_vocabs");
    }
}
