//! Build script: the CPU level the tests can check here (see build/cpu_cfg.rs).

include!("build/cpu_cfg.rs");

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=build/cpu_cfg.rs");
    emit_cpu_cfg();
}
