//! Reading the answer of a lightweight transaction.
//!
//! A conditional statement (`IF NOT EXISTS`, `IF EXISTS`, `IF col = ?`)
//! answers one row: a boolean `[applied]` column and, depending on the
//! server and the outcome, the current values of the row's columns. The
//! set of columns differs between ScyllaDB and Cassandra, so the row is
//! read generically and columns are looked up by name.

use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryResult;
use scylla::value::{CqlValue, Row};

use crate::{Result, StoreError};

/// What a lightweight transaction answered.
#[derive(Debug, PartialEq)]
pub(crate) struct LwtAnswer {
    pub applied: bool,
    names: Vec<String>,
    row: Row,
}

/// The outcome of executing a lightweight transaction.
#[derive(Debug)]
pub(crate) enum Lwt {
    Applied,
    NotApplied(LwtAnswer),
    /// It timed out after reaching replicas: it may or may not have been
    /// applied; a serial read tells.
    Uncertain(ExecutionError),
}

impl LwtAnswer {
    /// Reads the answer out of a statement's result.
    pub(crate) fn from_result(result: QueryResult) -> Result<LwtAnswer> {
        let rows = result.into_rows_result()?;
        let names = rows
            .column_specs()
            .iter()
            .map(|spec| spec.name().to_owned())
            .collect();
        let row = rows.maybe_first_row::<Row>()?;
        LwtAnswer::parse(names, row)
    }

    /// The answer from its column names and its row.
    pub(crate) fn parse(names: Vec<String>, row: Option<Row>) -> Result<LwtAnswer> {
        let row = row.ok_or_else(|| {
            StoreError::Internal("a lightweight transaction answered no row".into())
        })?;
        let applied = names
            .iter()
            .position(|name| name == "[applied]")
            .and_then(|index| row.columns.get(index))
            .and_then(|value| match value {
                Some(CqlValue::Boolean(applied)) => Some(*applied),
                _ => None,
            })
            .ok_or_else(|| {
                StoreError::Internal("a lightweight transaction answered no [applied]".into())
            })?;
        Ok(LwtAnswer {
            applied,
            names,
            row,
        })
    }

    fn value(&self, column: &str) -> Option<&CqlValue> {
        let index = self.names.iter().position(|name| name == column)?;
        self.row.columns.get(index)?.as_ref()
    }

    /// The current value of a `bigint` column, if the answer carries it.
    pub(crate) fn bigint(&self, column: &str) -> Option<i64> {
        match self.value(column)? {
            CqlValue::BigInt(value) => Some(*value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(columns: &[(&str, Option<CqlValue>)]) -> Result<LwtAnswer> {
        LwtAnswer::parse(
            columns.iter().map(|(name, _)| (*name).to_owned()).collect(),
            Some(Row {
                columns: columns.iter().map(|(_, value)| value.clone()).collect(),
            }),
        )
    }

    #[test]
    fn applied_is_read_by_name() {
        let applied = answer(&[("[applied]", Some(CqlValue::Boolean(true)))]).unwrap();
        assert!(applied.applied);
        let refused = answer(&[
            ("username_lower", Some(CqlValue::Text("ann".into()))),
            ("[applied]", Some(CqlValue::Boolean(false))),
            ("user_id", Some(CqlValue::BigInt(42))),
        ])
        .unwrap();
        assert!(!refused.applied);
        assert_eq!(refused.bigint("user_id"), Some(42));
        assert_eq!(refused.bigint("username_lower"), None, "wrong type");
        assert_eq!(refused.bigint("missing"), None);
    }

    #[test]
    fn current_values_may_be_null_or_absent() {
        let refused = answer(&[
            ("[applied]", Some(CqlValue::Boolean(false))),
            ("user_id", Some(CqlValue::BigInt(7))),
            ("owner_id", None),
        ])
        .unwrap();
        assert_eq!(refused.bigint("user_id"), Some(7));
        assert_eq!(refused.bigint("owner_id"), None);
    }

    #[test]
    fn an_answer_without_applied_is_an_error() {
        assert!(answer(&[("user_id", Some(CqlValue::BigInt(1)))]).is_err());
        assert!(answer(&[("[applied]", None)]).is_err());
        assert!(LwtAnswer::parse(vec!["[applied]".into()], None).is_err());
    }
}
