//! One module per family of formats; each exports its block structs, its kernels,
//! and a `TRAITS` slice of table entries.

pub mod float;
pub mod iquants;
pub mod kquants;
pub mod legacy;
pub mod mxfp4;
pub mod weighted;
