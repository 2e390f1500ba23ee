//! Error responses: always JSON `{error, field}`, and request bodies parsed
//! so that a bad one is a 400 naming the field instead of a panic or a
//! bare message.
//!
//! Status codes: 400 the body or a parameter does not parse into the
//! expected shape (syntax, type, missing or unknown field, unknown enum
//! value); 401/403 authentication; 404 no such object; 409 the name is
//! taken, or the object is in use; 415 the body is not JSON; 422 it parses
//! but is invalid (a negative limit, an unknown SLA class, a bad prefix),
//! or the daemon refused it; 503 the daemon did not answer.

use super::model::ErrorBody;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorResponse {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ErrorResponse {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            status,
            body: ErrorBody {
                error: error.into(),
                field: None,
            },
        }
    }

    pub fn field(status: StatusCode, field: &str, error: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            status,
            body: ErrorBody {
                error: error.into(),
                field: Some(field.to_string()),
            },
        }
    }

    pub fn not_found(what: &str) -> ErrorResponse {
        ErrorResponse::new(StatusCode::NOT_FOUND, format!("no {what}"))
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// serde reports a missing field at its parent's path, with the name only
/// in the message (`missing field `name``): pull it out so the client gets
/// the full path. (An unknown field's path already ends with its name.)
fn field_path(path: &str, message: &str) -> Option<String> {
    const MISSING: &str = "missing field `";
    let named = message
        .find(MISSING)
        .map(|i| &message[i + MISSING.len()..])
        .and_then(|rest| rest.split('`').next());
    // `?` marks a position serde could not name (a key being read at a
    // syntax error); `.` is the root.
    let root = path == "." || path.contains('?');
    match (root, named) {
        (true, Some(n)) => Some(n.to_string()),
        (false, Some(n)) => Some(format!("{path}.{n}")),
        (true, None) => None,
        (false, None) => Some(path.to_string()),
    }
}

/// serde's derived `Deserialize` also takes a struct as an array of its
/// field values (`[null, null]`), which no client means and the schema
/// does not allow: require objects at the top and in the `object_arrays`
/// fields (arrays of structs).
fn objects_only(body: &[u8], object_arrays: &[&str]) -> Result<(), ErrorResponse> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ErrorResponse::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
    })?;
    let Some(object) = value.as_object() else {
        return Err(ErrorResponse::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    for field in object_arrays {
        if let Some(items) = object.get(*field).and_then(|v| v.as_array()) {
            if let Some(i) = items.iter().position(|v| !v.is_object()) {
                return Err(ErrorResponse::field(
                    StatusCode::BAD_REQUEST,
                    &format!("{field}[{i}]"),
                    "must be a JSON object",
                ));
            }
        }
    }
    Ok(())
}

/// Parse a JSON request body into `T` (a struct whose `object_arrays`
/// fields are arrays of structs). Errors: 415 when the content type is not
/// JSON, 400 naming the field otherwise.
pub fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    object_arrays: &[&str],
) -> Result<T, ErrorResponse> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
    if !is_json {
        return Err(ErrorResponse::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let syntax = |message: String| ErrorResponse {
        status: StatusCode::BAD_REQUEST,
        body: ErrorBody {
            error: format!("invalid JSON body: {message}"),
            field: None,
        },
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // A syntax error inside a value (`1e999`) still has a useful path.
        ErrorResponse {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                error: format!("invalid JSON body: {message}"),
                field: field_path(&path, &message),
            },
        }
    })?;
    // Trailing data after the value is a syntax error too.
    de.end().map_err(|e| syntax(e.to_string()))?;
    objects_only(body, object_arrays)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::Policy;

    fn json() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h
    }

    fn err(body: &str) -> ErrorResponse {
        json_body::<Policy>(&json(), body.as_bytes(), &["rules"]).unwrap_err()
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let e = err(r#"{"sla_class":"x"}"#);
        assert_eq!(
            (e.status, e.body.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("name"))
        );
        let e = err(r#"{"name":"p","sla_class":"x","rules":[{},{"dscp":"x"}]}"#);
        assert_eq!(e.body.field.as_deref(), Some("rules[1].dscp"));
        let e = err(r#"{"name":"p","sla_class":"x","rules":[{"dscp":300}]}"#);
        assert_eq!(e.body.field.as_deref(), Some("rules[0].dscp"));
        let e = err(r#"{"name":"p","sla_class":"x","mode":"random"}"#);
        assert_eq!(e.body.field.as_deref(), Some("mode"));
        let e = err(r#"{"name":"p","sla_class":"x","colour":"red"}"#);
        assert_eq!(e.body.field.as_deref(), Some("colour"));
        let e = err(r#"{"name":"p","sla_class":"x","rules":[{"prot":"tcp"}]}"#);
        assert_eq!(e.body.field.as_deref(), Some("rules[0].prot"));
    }

    #[test]
    fn syntax_errors_are_400_without_a_field() {
        for body in [
            "",
            "{",
            "{\"name\"",
            r#"{"name":"p","sla_class":"x"} x"#,
            "\u{0}",
        ] {
            let e = err(body);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body:?}");
            assert_eq!(e.body.field, None, "{body:?}");
        }
        let e = err("[]");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn structs_as_arrays_are_refused() {
        let e = err(r#"["p", "x"]"#);
        assert_eq!((e.status, e.body.field), (StatusCode::BAD_REQUEST, None));
        let e = err(r#"{"name":"p","sla_class":"x","rules":[{}, [null, null]]}"#);
        assert_eq!(e.body.field.as_deref(), Some("rules[1]"));
    }

    #[test]
    fn other_content_types_are_415() {
        let e = json_body::<Policy>(&HeaderMap::new(), b"{}", &[]).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
