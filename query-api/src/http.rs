//! GraphQL over HTTP, as its specification says
//! (<https://graphql.github.io/graphql-over-http/>), checked by the
//! reference audit (`graphql-http`) in the test command.
//!
//! - Answers: `application/graphql-response+json` when the client accepts
//!   it, else `application/json` (also for `*/*` and a missing `Accept`);
//!   406 when it accepts neither.
//! - POST takes `application/json` only (415 otherwise, a missing
//!   content-type included: a `text/plain` form post from another site is
//!   never executed), at most [`MAX_BODY_BYTES`] (413), and a JSON object
//!   with a string `query` (or a batch of at most [`MAX_BATCH`] of them);
//!   anything else is 400.
//! - GET takes `query`, `operationName` and URL-encoded JSON `variables` /
//!   `extensions`; a mutation on GET is 405. A GET without `query` is a
//!   person's browser: it gets GraphiQL.
//! - A request that fails before execution (a document that does not
//!   parse or validate, variables that do not coerce) is 400 without a
//!   `data` entry when the client accepts `application/graphql-response+json`;
//!   with `application/json` it is 200, as the specification asks.
//! - Every error carries `extensions.code`.

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request, Response, ServerError, Variables};
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Extension;
use identity::Caller;
use serde_json::{json, Map, Value};

use std::sync::Arc;

use crate::access::Viewer;
use crate::schema::Consistency;
use crate::FreshledgerSchema;

/// Largest request body (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most operations in one batched POST.
pub const MAX_BATCH: usize = 10;
/// Longest error message returned (a parse error can quote a long line).
const MAX_MESSAGE: usize = 500;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type of the answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    GraphqlResponse,
    Json,
}

impl Answer {
    fn content_type(self) -> &'static str {
        match self {
            Answer::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Answer::Json => "application/json; charset=utf-8",
        }
    }
}

/// The first acceptable media type the client lists (quality ignored but
/// for `q=0`), `application/json` when it lists none or `*/*`.
fn negotiate(headers: &HeaderMap) -> Option<Answer> {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Answer::Json);
    };
    if accept.trim().is_empty() {
        return Some(Answer::Json);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        if parts.any(|p| p.replace(' ', "") == "q=0") {
            continue;
        }
        match media.as_str() {
            GRAPHQL_RESPONSE => return Some(Answer::GraphqlResponse),
            JSON | "application/*" | "*/*" => return Some(Answer::Json),
            _ => {}
        }
    }
    None
}

/// A request error as the specification shapes it: `{errors}` only.
fn refuse(answer: Answer, status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    with_type(answer, status, body.to_string())
}

fn with_type(answer: Answer, status: StatusCode, body: String) -> HttpResponse {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type()),
    );
    resp
}

fn not_acceptable() -> HttpResponse {
    refuse(
        Answer::Json,
        StatusCode::NOT_ACCEPTABLE,
        "NOT_ACCEPTABLE",
        "this endpoint answers application/graphql-response+json or application/json",
    )
}

/// One operation's parameters, checked.
fn request_of(params: &Map<String, Value>) -> Result<Request, String> {
    let query = match params.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(_) => return Err("query must be a string".into()),
        None => return Err("a query is required".into()),
    };
    let mut req = Request::new(query);
    match params.get("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => req = req.operation_name(name.clone()),
        Some(_) => return Err("operationName must be a string".into()),
    }
    match params.get("variables") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => req = req.variables(Variables::from_json(v.clone())),
        Some(_) => return Err("variables must be an object".into()),
    }
    match params.get("extensions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = async_graphql::Value::from_json(v.clone())
                    .map_err(|e| format!("extensions.{k}: {e}"))?;
                req.extensions.insert(k.clone(), v);
            }
        }
        Some(_) => return Err("extensions must be an object".into()),
    }
    Ok(req)
}

fn batch_of(body: &Bytes) -> Result<BatchRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    match value {
        Value::Object(params) => Ok(BatchRequest::Single(request_of(&params)?)),
        Value::Array(items) if items.is_empty() => Err("an empty batch".into()),
        Value::Array(items) if items.len() > MAX_BATCH => {
            Err(format!("a batch holds at most {MAX_BATCH} operations"))
        }
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Object(params) => request_of(params),
                _ => Err("every operation of a batch is an object".into()),
            })
            .collect::<Result<_, _>>()
            .map(BatchRequest::Batch),
        _ => Err("the body must be a JSON object".into()),
    }
}

/// Whether the query could not be executed at all (it did not parse or
/// validate, or its variables did not coerce): no data, and no error
/// tied to a field.
fn failed_before_execution(resp: &Response) -> bool {
    resp.data == async_graphql::Value::Null
        && !resp.errors.is_empty()
        && resp.errors.iter().all(|e| e.path.is_empty())
}

/// Gives every error a stable code and a bounded message; `parsed` tells
/// a parse failure from a validation failure.
fn coded(mut resp: Response, parsed: bool) -> Response {
    let before = failed_before_execution(&resp);
    for e in &mut resp.errors {
        if e.message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !e.message.is_char_boundary(end) {
                end -= 1;
            }
            e.message.truncate(end);
            e.message.push('…');
        }
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if !has_code {
            let code = error_code(e, parsed, before);
            e.extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
    }
    resp
}

fn error_code(e: &ServerError, parsed: bool, before_execution: bool) -> &'static str {
    let message = e.message.to_ascii_lowercase();
    if !parsed {
        "GRAPHQL_PARSE_FAILED"
    } else if message.contains("nested too deep") {
        "QUERY_TOO_DEEP"
    } else if message.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else if before_execution && message.contains("variable") {
        "BAD_USER_INPUT"
    } else if before_execution {
        "GRAPHQL_VALIDATION_FAILED"
    } else {
        "INTERNAL"
    }
}

/// The operation a GET would run, if the document parses: mutations are
/// for POST only. (The parsed document stays in the request: it is not
/// parsed again to run.)
fn is_mutation(req: &mut Request) -> bool {
    let name = req.operation_name.clone();
    let Ok(doc) = req.parsed_query() else {
        return false;
    };
    crate::selection_order::executed(doc, name.as_deref())
        .is_some_and(|op| op.node.ty == OperationType::Mutation)
}

async fn execute(
    schema: &FreshledgerSchema,
    answer: Answer,
    batch: BatchRequest,
    viewer: Viewer,
) -> HttpResponse {
    // Each document parsed here, once (a GET's already was): the schema
    // executes the parsed document, the answer's keys are put back in its
    // selection order, and a document that did not parse is told apart
    // from one that did not validate.
    let mut batch = batch;
    let selections: Vec<
        Option<(
            async_graphql::parser::types::ExecutableDocument,
            Option<String>,
        )>,
    > = batch
        .iter_mut()
        .map(|r| {
            let name = r.operation_name.clone();
            r.parsed_query().ok().map(|doc| (doc.clone(), name))
        })
        .collect();
    let in_order = |mut resp: Response, i: usize| {
        if let Some(Some((doc, name))) = selections.get(i) {
            crate::selection_order::restore(doc, name.as_deref(), &mut resp.data);
        }
        resp
    };
    // One read-your-writes wait for the whole HTTP request.
    let consistency = Arc::new(Consistency::new());
    let batch = match batch {
        BatchRequest::Single(r) => BatchRequest::Single(r.data(consistency).data(viewer)),
        BatchRequest::Batch(rs) => BatchRequest::Batch(
            rs.into_iter()
                .map(|r| r.data(consistency.clone()).data(viewer.clone()))
                .collect(),
        ),
    };
    let resp = schema.execute_batch(batch).await;
    match resp {
        BatchResponse::Single(resp) => {
            let resp = coded(in_order(resp, 0), selections[0].is_some());
            let before = failed_before_execution(&resp);
            // Serialised straight from the response, never through a
            // `serde_json::Value` (whose map sorts its keys): the data's
            // keys stay in selection order, as the spec requires.
            let (status, body) = if before && answer == Answer::GraphqlResponse {
                // No data entry: the request never executed.
                let body = serde_json::to_string(&json!({ "errors": resp.errors }));
                (StatusCode::BAD_REQUEST, body)
            } else if signed_out(&resp) {
                // A field needed a subject and none signed in: the
                // request as a whole is unauthenticated.
                (StatusCode::UNAUTHORIZED, serde_json::to_string(&resp))
            } else {
                (StatusCode::OK, serde_json::to_string(&resp))
            };
            let body = body.unwrap_or_else(|e| {
                json!({"errors": [{"message": format!("the answer could not be written: {e}"),
                                   "extensions": {"code": "INTERNAL"}}]})
                .to_string()
            });
            let mut resp = with_type(answer, status, body);
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="freshledger""#),
                );
            }
            resp
        }
        BatchResponse::Batch(items) => {
            let items: Vec<Response> = items
                .into_iter()
                .enumerate()
                .map(|(i, r)| coded(in_order(r, i), selections[i].is_some()))
                .collect();
            let body = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
            with_type(answer, StatusCode::OK, body)
        }
    }
}

/// Did a field refuse for want of a subject?
fn signed_out(resp: &Response) -> bool {
    resp.errors.iter().any(|e| {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .is_some_and(|c| *c == async_graphql::Value::from("UNAUTHENTICATED"))
    })
}

/// The subject of the request; a token that did not pass refuses the
/// whole request (401 and the Bearer challenge).
fn viewer(answer: Answer, caller: Option<Extension<Caller>>) -> Result<Viewer, Box<HttpResponse>> {
    match caller.map(|Extension(c)| c.0) {
        None => Ok(Viewer(None)),
        Some(Ok(p)) => Ok(Viewer(p)),
        Some(Err(e)) => {
            let code = e.code().to_ascii_uppercase();
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut resp = refuse(answer, status, &code, &e.to_string());
            if let Ok(v) = HeaderValue::from_str(&e.challenge()) {
                resp.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            Err(Box::new(resp))
        }
    }
}

/// `POST /graphql`.
pub(crate) async fn post(
    State((schema, _)): State<(FreshledgerSchema, identity::Identity)>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> HttpResponse {
    let Some(answer) = negotiate(&headers) else {
        return not_acceptable();
    };
    let viewer = match viewer(answer, caller) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let json_body = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(JSON));
    if !json_body {
        return refuse(
            answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the request as application/json",
        );
    }
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                answer,
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("requests are at most {MAX_BODY_BYTES} bytes"),
            )
        }
    };
    match batch_of(&bytes) {
        Ok(batch) => execute(&schema, answer, batch, viewer).await,
        Err(m) => refuse(answer, StatusCode::BAD_REQUEST, "BAD_REQUEST", &m),
    }
}

/// `GET /graphql`: a query in the URL, or GraphiQL for a browser.
pub(crate) async fn get(
    State((schema, _)): State<(FreshledgerSchema, identity::Identity)>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> HttpResponse {
    if !params.iter().any(|(k, _)| k == "query") {
        return crate::graphiql::page().into_response();
    }
    let Some(answer) = negotiate(&headers) else {
        return not_acceptable();
    };
    let viewer = match viewer(answer, caller) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let mut map = Map::new();
    for (k, v) in params {
        let value = match k.as_str() {
            // URL-encoded JSON.
            "variables" | "extensions" if !v.is_empty() => match serde_json::from_str(&v) {
                Ok(v) => v,
                Err(e) => {
                    return refuse(
                        answer,
                        StatusCode::BAD_REQUEST,
                        "BAD_REQUEST",
                        &format!("{k} is not JSON: {e}"),
                    )
                }
            },
            "variables" | "extensions" => Value::Null,
            _ => Value::String(v),
        };
        map.insert(k, value);
    }
    let mut req = match request_of(&map) {
        Ok(r) => r,
        Err(m) => return refuse(answer, StatusCode::BAD_REQUEST, "BAD_REQUEST", &m),
    };
    if is_mutation(&mut req) {
        let mut resp = refuse(
            answer,
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "mutations are sent with POST",
        );
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    execute(&schema, answer, BatchRequest::Single(req), viewer).await
}
