//! Every error the embedded registry's HTTP API answers, in one place: Confluent Schema
//! Registry's HTTP status, `error_code` and message text for each case (as of Confluent Platform
//! 7.x/8.x; where versions differ, the comment says which was chosen), so tools and people that
//! search for Confluent's texts find them.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api::content_type;
use crate::registry::types::{RegistryError, VersionSpec};

/// A Confluent-style error answer: `{"error_code": …, "message": …}` (and, for an incompatible
/// schema, the reasons one by one in `messages`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    pub messages: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), messages: Vec::new() }
    }

    /// Malformed JSON in the request body (Confluent: Jackson's parse error, 400/400).
    pub fn malformed_body(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 400, detail.to_string())
    }

    /// A body that is JSON but not the request's shape, or misses a required field (Confluent's
    /// bean validation: 422 with error code 422).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 422, detail)
    }

    /// `schemaType` names no format this registry serves (answered as Confluent's request
    /// validation answers it: 422/422).
    pub fn invalid_schema_type(schema_type: &str) -> Self {
        Self::unprocessable(format!("Invalid schema type {schema_type}"))
    }

    /// `{version}` is not a positive 32-bit number, `latest` or `-1`.
    pub fn invalid_version(text: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{text}' is not a valid version id. Allowed values are between [1, 2^31-1] \
                 and the string \"latest\""
            ),
        )
    }

    /// `PUT /config` with a level that does not exist.
    pub fn invalid_compatibility() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, \
             forward_transitive, and full_transitive",
        )
    }

    /// `PUT /mode` with a mode that does not exist.
    pub fn invalid_mode() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42204,
            "Invalid mode. Valid values are READWRITE, READONLY, and IMPORT.",
        )
    }

    /// An id in a path that is not a number: Confluent's router answers a plain 404.
    pub fn no_such_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
    }

    /// `Accept` names no type the registry answers with.
    pub fn not_acceptable() -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, 406, "HTTP 406 Not Acceptable")
    }

    /// A lookup (`POST /subjects/{subject}`) of a schema that does not parse.
    pub fn lookup_of_invalid_schema(subject: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Error while looking up schema under subject {subject}"),
        )
    }

    /// `GET /schemas/ids/{id}/subjects|versions` of an unknown id (no id in the text).
    pub fn schema_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 40403, "Schema not found")
    }

    /// A bad boolean query parameter.
    pub fn invalid_flag(name: &str, value: &str) -> Self {
        Self::unprocessable(format!("query parameter '{name}' must be true or false, not '{value}'"))
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        use StatusCode as S;
        let (status, code, message) = match &error {
            RegistryError::SubjectNotFound(subject) => (S::NOT_FOUND, 40401, format!("Subject '{subject}' not found.")),
            RegistryError::VersionNotFound { version, .. } => {
                let version = match version {
                    VersionSpec::Number(n) => n.to_string(),
                    VersionSpec::Latest => "-1".to_owned(),
                };
                (S::NOT_FOUND, 40402, format!("Version {version} not found."))
            }
            RegistryError::SchemaNotFound(0) => (S::NOT_FOUND, 40403, "Schema not found".to_owned()),
            RegistryError::SchemaNotFound(id) => (S::NOT_FOUND, 40403, format!("Schema {id} not found")),
            // Confluent's texts lack the space after the first full stop; kept, since tools match them.
            RegistryError::SubjectSoftDeleted(subject) => (
                S::NOT_FOUND,
                40404,
                format!("Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"),
            ),
            RegistryError::SubjectNotSoftDeleted(subject) => (
                S::NOT_FOUND,
                40405,
                format!("Subject '{subject}' was not deleted first before being permanently deleted"),
            ),
            RegistryError::VersionSoftDeleted { subject, version } => (
                S::NOT_FOUND,
                40406,
                format!(
                    "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
                ),
            ),
            RegistryError::VersionNotSoftDeleted { subject, version } => (
                S::NOT_FOUND,
                40407,
                format!("Subject '{subject}' Version {version} was not deleted first before being permanently deleted"),
            ),
            RegistryError::SubjectConfigNotFound(subject) => (
                S::NOT_FOUND,
                40408,
                format!("Subject '{subject}' does not have subject-level compatibility configured"),
            ),
            RegistryError::SubjectModeNotFound(subject) => {
                (S::NOT_FOUND, 40409, format!("Subject '{subject}' does not have subject-level mode configured"))
            }
            // Confluent 8.2 renamed the code 40901; clients of every version still read 409.
            RegistryError::Incompatible { subject, findings, .. } => {
                let message = format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", \
                     details: [{}]",
                    findings.join(", ")
                );
                let mut answer = Self::new(S::CONFLICT, 409, message);
                answer.messages.clone_from(findings);
                return answer;
            }
            RegistryError::EmptySchema => (S::UNPROCESSABLE_ENTITY, 42201, "Empty schema".to_owned()),
            RegistryError::InvalidSchema(detail) => {
                (S::UNPROCESSABLE_ENTITY, 42201, format!("Invalid schema, details: {detail}"))
            }
            RegistryError::InvalidCompatibility(_) => return Self::invalid_compatibility(),
            RegistryError::NotPermitted(message) => (S::UNPROCESSABLE_ENTITY, 42205, message.clone()),
            RegistryError::ReferencedBy { subject, version, .. } => (
                S::UNPROCESSABLE_ENTITY,
                42206,
                format!(
                    "One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={subject},version={version}}}."
                ),
            ),
            // Confluent answers its store errors with 500; a Kafka outage is a wait, so 503 (and
            // its error code).
            RegistryError::Unavailable(_) | RegistryError::Unexpected { .. } => {
                tracing::warn!(error = %error, "embedded registry request failed");
                (S::SERVICE_UNAVAILABLE, 50001, error.to_string())
            }
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error_code": self.code, "message": self.message});
        if !self.messages.is_empty() {
            body["messages"] = json!(self.messages);
        }
        // The negotiation layer changes the type when the request asked for another.
        (self.status, [(header::CONTENT_TYPE, content_type::DEFAULT)], body.to_string()).into_response()
    }
}

/// Read-only refusal, as Confluent words it.
pub fn read_only(subject: Option<&str>) -> RegistryError {
    RegistryError::NotPermitted(format!("Subject {} is in read-only mode", subject.unwrap_or("null")))
}

/// A registration with an id outside `IMPORT` mode.
pub fn not_import_mode(subject: &str) -> RegistryError {
    RegistryError::NotPermitted(format!("Subject {subject} is not in import mode"))
}

/// A registration without an id in `IMPORT` mode.
pub fn not_read_write_mode(subject: &str) -> RegistryError {
    RegistryError::NotPermitted(format!("Subject {subject} is not in read-write mode"))
}

/// An import that would give an id already in use to another schema.
pub fn id_taken(id: u32) -> RegistryError {
    RegistryError::NotPermitted(format!("Overwrite new schema with id {id} is not permitted."))
}

/// Switching to `IMPORT` while subjects exist, without `force`.
pub fn subjects_exist() -> RegistryError {
    RegistryError::NotPermitted("Cannot import since found existing subjects".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_answer_with_confluents_status_code_and_text() {
        let cases: Vec<(RegistryError, u16, u32, &str)> = vec![
            (RegistryError::SubjectNotFound("s".into()), 404, 40401, "Subject 's' not found."),
            (
                RegistryError::VersionNotFound { subject: "s".into(), version: VersionSpec::Number(15) },
                404,
                40402,
                "Version 15 not found.",
            ),
            (RegistryError::SchemaNotFound(7), 404, 40403, "Schema 7 not found"),
            (RegistryError::SchemaNotFound(0), 404, 40403, "Schema not found"),
            (
                RegistryError::SubjectSoftDeleted("s".into()),
                404,
                40404,
                "Subject 's' was soft deleted.Set permanent=true to delete permanently",
            ),
            (
                RegistryError::SubjectNotSoftDeleted("s".into()),
                404,
                40405,
                "Subject 's' was not deleted first before being permanently deleted",
            ),
            (
                RegistryError::VersionSoftDeleted { subject: "s".into(), version: 1 },
                404,
                40406,
                "Subject 's' Version 1 was soft deleted.Set permanent=true to delete permanently",
            ),
            (
                RegistryError::VersionNotSoftDeleted { subject: "s".into(), version: 1 },
                404,
                40407,
                "Subject 's' Version 1 was not deleted first before being permanently deleted",
            ),
            (
                RegistryError::SubjectConfigNotFound("s".into()),
                404,
                40408,
                "Subject 's' does not have subject-level compatibility configured",
            ),
            (
                RegistryError::SubjectModeNotFound("s".into()),
                404,
                40409,
                "Subject 's' does not have subject-level mode configured",
            ),
            (RegistryError::EmptySchema, 422, 42201, "Empty schema"),
            (read_only(Some("s")), 422, 42205, "Subject s is in read-only mode"),
            (id_taken(7), 422, 42205, "Overwrite new schema with id 7 is not permitted."),
            (subjects_exist(), 422, 42205, "Cannot import since found existing subjects"),
            (
                RegistryError::ReferencedBy { subject: "s".into(), version: 1, ids: vec![2] },
                422,
                42206,
                "One or more references exist to the schema {magic=1,keytype=SCHEMA,subject=s,version=1}.",
            ),
        ];
        for (error, status, code, message) in cases {
            let answer = ApiError::from(error);
            assert_eq!((answer.status.as_u16(), answer.code, answer.message.as_str()), (status, code, message));
        }
    }

    #[test]
    fn an_incompatible_schema_lists_its_reasons_in_the_message_and_in_messages() {
        let answer = ApiError::from(RegistryError::Incompatible {
            subject: "t-value".into(),
            mode: "BACKWARD".into(),
            findings: vec!["{errorType:'X'}".into(), "{oldSchemaVersion: 1}".into()],
        });
        assert_eq!((answer.status.as_u16(), answer.code), (409, 409));
        assert_eq!(
            answer.message,
            "Schema being registered is incompatible with an earlier schema for subject \"t-value\", details: \
             [{errorType:'X'}, {oldSchemaVersion: 1}]"
        );
        assert_eq!(answer.messages.len(), 2);
    }
}
