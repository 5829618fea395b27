//! Values a PromQL expression evaluates to.

use std::fmt;

use crate::labels::Labels;
use crate::storage::Timestamp;

pub use crate::storage::Sample as Point;

/// One element of an instant vector: a series identity with one value at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels.
    pub metric: Labels,
    /// Evaluation time in milliseconds.
    pub t: Timestamp,
    /// The value.
    pub v: f64,
}

/// One series of a range vector (or of a range query's result).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series labels.
    pub metric: Labels,
    /// Points in time order.
    pub points: Vec<Point>,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single number.
    Scalar {
        /// Evaluation time.
        t: Timestamp,
        /// The number.
        v: f64,
    },
    /// A string literal.
    String {
        /// Evaluation time.
        t: Timestamp,
        /// The string.
        v: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector, or the result of a range query.
    Matrix(Vec<Series>),
}

impl Value {
    /// The Prometheus API's name for the value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar { t, v } => write!(f, "scalar: {v} @[{t}]"),
            Value::String { t, v } => write!(f, "string: {v:?} @[{t}]"),
            Value::Vector(samples) => {
                for s in samples {
                    writeln!(f, "{} => {} @[{}]", s.metric, s.v, s.t)?;
                }
                Ok(())
            }
            Value::Matrix(series) => {
                for s in series {
                    write!(f, "{} =>", s.metric)?;
                    for p in &s.points {
                        write!(f, " {} @[{}]", p.v, p.t)?;
                    }
                    writeln!(f)?;
                }
                Ok(())
            }
        }
    }
}
