//! (being written)

use crate::TypeTraits;

/// Table entries for this family.
pub(crate) const TRAITS: &[TypeTraits] = &[];
