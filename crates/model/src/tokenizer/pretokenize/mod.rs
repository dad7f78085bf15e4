//! Pre-tokenizers: split text into words before byte-level BPE merges.
