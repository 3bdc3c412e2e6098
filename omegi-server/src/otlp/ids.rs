//! Trace and span ids on the wire: checked before anything else of a
//! request is decoded; a wrong length or an all-zero id rejects the whole
//! request.

use omegi_core::{SpanId, TraceId};

use super::{DecodeError, IdProblem};

fn hex(bytes: &[u8]) -> String {
    const MAX: usize = 32;
    let mut s: String = bytes.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}

pub(crate) fn trace_id(bytes: &[u8], context: impl Fn() -> String) -> Result<TraceId, DecodeError> {
    let invalid = |problem| DecodeError::InvalidTraceId {
        id: hex(bytes),
        context: context(),
        problem,
    };
    let array: [u8; 16] = bytes.try_into().map_err(|_| {
        invalid(IdProblem::Length {
            got: bytes.len(),
            expected: 16,
        })
    })?;
    let id = TraceId::from_bytes(array);
    if !id.is_valid() {
        return Err(invalid(IdProblem::AllZero));
    }
    Ok(id)
}

pub(crate) fn span_id(bytes: &[u8], context: impl Fn() -> String) -> Result<SpanId, DecodeError> {
    let invalid = |problem| DecodeError::InvalidSpanId {
        id: hex(bytes),
        context: context(),
        problem,
    };
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        invalid(IdProblem::Length {
            got: bytes.len(),
            expected: 8,
        })
    })?;
    let id = SpanId::from_bytes(array);
    if !id.is_valid() {
        return Err(invalid(IdProblem::AllZero));
    }
    Ok(id)
}

/// Empty or all zero → `None`; 16 bytes → the id; anything else is invalid.
pub(crate) fn optional_trace_id(
    bytes: &[u8],
    context: impl Fn() -> String,
) -> Result<Option<TraceId>, DecodeError> {
    if bytes.iter().all(|b| *b == 0) && (bytes.is_empty() || bytes.len() == 16) {
        return Ok(None);
    }
    trace_id(bytes, context).map(Some)
}

/// Empty or all zero → `None`; 8 bytes → the id; anything else is invalid.
pub(crate) fn optional_span_id(
    bytes: &[u8],
    context: impl Fn() -> String,
) -> Result<Option<SpanId>, DecodeError> {
    if bytes.iter().all(|b| *b == 0) && (bytes.is_empty() || bytes.len() == 8) {
        return Ok(None);
    }
    span_id(bytes, context).map(Some)
}
