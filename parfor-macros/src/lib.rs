//! Procedural macros of parfor: `#[parfor]` and `parmap!`. Depend on `parfor` instead.
