// Included by the build scripts of `kernels` and `model` (`include!`).
//
// Tests that check one CPU level's kernels are compiled as *ignored*, with the
// reason, on a machine without that level, so that cargo's summary counts them
// as not checked instead of passed (a skipped check must never read "ok";
// tools/test.sh lists every ignored test at the end of its run). The level is
// the one `kernels::cpu_level` will pick: the best the build machine has, or
// the lower one `HEARTH_CPU` forces, so `HEARTH_CPU=avx2 cargo test` runs the
// suite as an AVX2-only machine would. Tests run on the machine that builds
// them; a cross build sets no x86 level. A cross build for aarch64 (run under
// qemu-aarch64) cannot see the CPU its runner emulates: there
// `HEARTH_CPU=neon-dotprod` says that the runner has `dotprod` (qemu's
// `-cpu max` does), which is also what makes `kernels::cpu_level` pick that
// level at run time.
//
// cfgs: `hearth_avx2`, `hearth_avx512` (F, BW, VL), `hearth_avx512_vnni`, each
// implying the ones before; `hearth_neon_dotprod` (aarch64 with `dotprod`);
// `hearth_no_repack` when `HEARTH_NO_REPACK` is set.

/// The x86-64 levels of the build machine: (AVX2 + FMA + F16C, AVX-512 F/BW/VL,
/// AVX-512 VNNI), as `kernels::simd` detects them.
#[cfg(target_arch = "x86_64")]
fn host_levels() -> (bool, bool, bool) {
    let avx2 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl");
    (avx2, avx512, avx512 && is_x86_feature_detected!("avx512vnni"))
}

#[cfg(not(target_arch = "x86_64"))]
fn host_levels() -> (bool, bool, bool) {
    (false, false, false)
}

/// Whether the build machine is an aarch64 CPU with `dotprod`, as
/// `kernels::simd` detects it.
#[cfg(target_arch = "aarch64")]
fn host_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

#[cfg(not(target_arch = "aarch64"))]
fn host_dotprod() -> bool {
    false
}

/// Prints the cfgs described above.
fn emit_cpu_cfg() {
    println!(
        "cargo::rustc-check-cfg=cfg(hearth_avx2, hearth_avx512, hearth_avx512_vnni, hearth_neon_dotprod, hearth_no_repack)"
    );
    println!("cargo::rerun-if-env-changed=HEARTH_CPU");
    println!("cargo::rerun-if-env-changed=HEARTH_NO_REPACK");
    if std::env::var_os("HEARTH_NO_REPACK").is_some() {
        println!("cargo::rustc-cfg=hearth_no_repack");
    }
    let forced = std::env::var("HEARTH_CPU")
        .ok()
        .map(|s| s.trim().to_ascii_lowercase());
    let native = std::env::var("HOST").ok() == std::env::var("TARGET").ok();
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64") {
        let dotprod = match forced.as_deref() {
            Some("scalar" | "neon") => false,
            Some("neon-dotprod") => !native || host_dotprod(),
            _ => native && host_dotprod(),
        };
        if dotprod {
            println!("cargo::rustc-cfg=hearth_neon_dotprod");
        }
        return;
    }
    if !native {
        return;
    }
    let (avx2, avx512, vnni) = host_levels();
    // As kernels::simd::resolve: a level the machine lacks, or an unknown
    // name, falls back to the best one.
    let (avx2, avx512, vnni) = match forced.as_deref() {
        Some("scalar") => (false, false, false),
        Some("avx2") if avx2 => (true, false, false),
        _ => (avx2, avx512, vnni),
    };
    for (on, name) in [
        (avx2, "hearth_avx2"),
        (avx512, "hearth_avx512"),
        (vnni, "hearth_avx512_vnni"),
    ] {
        if on {
            println!("cargo::rustc-cfg={name}");
        }
    }
}
