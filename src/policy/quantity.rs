//! Kubernetes resource quantities.

/// A parsed quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity;

/// Why a quantity does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        Err(QuantityError(s.to_string()))
    }
}
