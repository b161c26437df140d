//! Options checked once, in the manner of linfa's `ParamGuard`: [`Check::check`] is the only way
//! to make a [`Checked`], so a function that takes one relies on its values without checking
//! them again, and an entry point that takes raw options checks them exactly once and hands the
//! checked form on.
//!
//! ```
//! use intent_models::checked::Check;
//! use intent_models::SvmParams;
//!
//! let params = SvmParams { c: 0.5, ..SvmParams::default() }.check().unwrap();
//! assert_eq!(params.c, 0.5); // a `Checked<SvmParams>` reads as the options
//! let err = SvmParams { c: -1.0, ..SvmParams::default() }.check().unwrap_err();
//! assert!(err.to_string().contains("`c`"), "{err}"); // errors name the field
//! ```

use std::ops::Deref;

/// Options with a check of their values.
pub trait Check: Sized {
    /// What a failed check returns (naming the field and the value).
    type Error;

    /// Checks every value; the error names the first bad field.
    fn validate(&self) -> Result<(), Self::Error>;

    /// The options, checked.
    fn check(self) -> Result<Checked<Self>, Self::Error> {
        self.validate()?;
        Ok(Checked(self))
    }
}

/// Options whose [`Check::validate`] passed. Reads as `T` (it derefs to it).
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T>(T);

impl<T> Checked<T> {
    /// The options themselves.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Checked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
