//! One error type for the API ([`ApiError`], JSON) and its page form ([`PageError`], HTML). User errors keep the
//! library's message (and the setting it is about); internal ones get a request id while the details go to
//! `server.log` (see [`crate::routes::log_internal_errors`]), never a stack trace.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use ferrotune_config::Issue;
use serde::Serialize;

/// An error answered by the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Per-setting problems (422 from experiment validation).
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// Details for `server.log` (internal errors only; boxed to keep `Result<_, ApiError>` small).
    internal: Option<Box<Internal>>,
}

/// What `server.log` gets for an internal error.
#[derive(Debug, Clone)]
struct Internal {
    /// Also in the answer's message, to find the line.
    request_id: String,
    details: String,
}

/// The details of an internal error, handed to the logging middleware in the response's extensions.
#[derive(Debug, Clone)]
pub struct InternalDetails(pub String);

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "<[Issue]>::is_empty")]
    errors: &'a [Issue],
    #[serde(skip_serializing_if = "<[Issue]>::is_empty")]
    warnings: &'a [Issue],
}

impl ApiError {
    /// A client error with `status` and a readable message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            errors: Vec::new(),
            warnings: Vec::new(),
            internal: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// Settings that do not validate: 422 with each problem beside its key.
    pub fn invalid(errors: Vec<Issue>, warnings: Vec<Issue>) -> ApiError {
        let message = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message,
            errors,
            warnings,
            internal: None,
        }
    }

    /// A failure that is not the user's: the answer shows a request id, `server.log` the details.
    pub fn internal(details: impl Into<String>) -> ApiError {
        let id = crate::security::random_hex(6);
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("internal error (request {id}); the details are in server.log in the ferrotune home"),
            errors: Vec::new(),
            warnings: Vec::new(),
            internal: Some(Box::new(Internal {
                request_id: id,
                details: details.into(),
            })),
        }
    }

    /// Puts what was being done before the error (`cannot load backbone `x``): before the message of a user
    /// error, before the logged details of an internal one (whose message stays generic).
    pub fn context(mut self, context: impl std::fmt::Display) -> ApiError {
        match &mut self.internal {
            Some(internal) => internal.details = format!("{context}: {}", internal.details),
            None => self.message = format!("{context}: {}", self.message),
        }
        self
    }

    /// The line for `server.log` (`request ID: details`); `None` for a user error.
    pub fn internal_details(&self) -> Option<String> {
        self.internal
            .as_ref()
            .map(|i| format!("request {}: {}", i.request_id, i.details))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a library error is answered: a client error with its message, or an internal one.
enum Class {
    User(StatusCode),
    Internal,
}

impl Class {
    fn answer(self, message: String) -> ApiError {
        match self {
            Class::User(status) => ApiError::new(status, message),
            Class::Internal => ApiError::internal(message),
        }
    }
}

// Each `From` below matches every variant of its error enum, without a catch-all: a new variant is classified
// here before it compiles. User errors (the request, or a file or setting the user named, is wrong) keep their
// message and `help:` line; failures of the machine (i/o, SQLite, tensor computations, processes) are internal.

impl From<ferrotune_store::Error> for ApiError {
    fn from(e: ferrotune_store::Error) -> Self {
        use ferrotune_store::Error as E;
        let class = match &e {
            // The store's help names CLI commands; the studio and the API point at their own pages.
            E::DatasetNotFound { name, suggestion } => {
                return ApiError::not_found(not_found_in_studio(
                    "dataset",
                    name,
                    suggestion,
                    "/datasets",
                ))
            }
            E::ExperimentNotFound { name, suggestion } => {
                return ApiError::not_found(not_found_in_studio(
                    "experiment",
                    name,
                    suggestion,
                    "/",
                ))
            }
            E::Data(inner) => return data_class(inner).answer(e.to_string()),
            E::InArchive { source, .. } => return data_class(source).answer(e.to_string()),
            E::Config(inner) => return config_error(inner),
            E::Export(inner) => return export_class(inner).answer(e.to_string()),
            E::Io { .. }
            | E::Sqlite { .. }
            | E::SchemaTooNew { .. }
            | E::BadMetadata { .. }
            | E::Spawn { .. }
            | E::Signal { .. }
            | E::Corrupt { .. } => Class::Internal,
            E::RunFileMissing { .. }
            | E::UnknownArtifact { .. }
            | E::BackboneNotFound { .. }
            | E::InputNotFound { .. } => Class::User(StatusCode::NOT_FOUND),
            E::DatasetExists { .. }
            | E::ExperimentExists { .. }
            | E::BackboneExists { .. }
            | E::ExperimentFolderExists { .. }
            | E::WrongStatus { .. }
            | E::NoCheckpoint { .. } => Class::User(StatusCode::CONFLICT),
            E::InvalidSettings { .. } => Class::User(StatusCode::UNPROCESSABLE_ENTITY),
            E::Archive { .. }
            | E::NoDataFiles { .. }
            | E::InvalidName { .. }
            | E::InvalidExperimentName { .. }
            | E::GridNameClash { .. }
            | E::NotABackbone { .. }
            | E::NotAnH2oExperiment { .. } => Class::User(StatusCode::BAD_REQUEST),
        };
        class.answer(e.to_string())
    }
}

fn export_class(e: &ferrotune_export::Error) -> Class {
    use ferrotune_export::Error as E;
    match e {
        E::NotARun { .. } => Class::User(StatusCode::NOT_FOUND),
        E::StillRunning { .. }
        | E::NoTrainedWeights { .. }
        | E::BackboneGone { .. }
        | E::OutputExists { .. } => Class::User(StatusCode::CONFLICT),
        E::NotEnoughSpace { .. } => Class::User(StatusCode::INSUFFICIENT_STORAGE),
        E::UnknownTemplate { .. } | E::Unsupported { .. } | E::Config(_) => {
            Class::User(StatusCode::BAD_REQUEST)
        }
        E::Io { .. } | E::Model(_) | E::Gguf(_) | E::Train(_) => Class::Internal,
    }
}

/// `no dataset named `x``, with a near name if there is one and the studio page that lists them all.
fn not_found_in_studio(kind: &str, name: &str, suggestion: &Option<String>, page: &str) -> String {
    let near = match suggestion {
        Some(s) => format!("did you mean `{s}`? "),
        None => String::new(),
    };
    format!("no {kind} named `{name}`\nhelp: {near}the page {page} lists every {kind}")
}

impl From<ferrotune_config::Error> for ApiError {
    fn from(e: ferrotune_config::Error) -> Self {
        config_error(&e)
    }
}

fn config_error(e: &ferrotune_config::Error) -> ApiError {
    use ferrotune_config::Error as E;
    match e {
        E::Settings { issues, .. } => ApiError::invalid(issues.clone(), Vec::new()),
        E::Read { .. } | E::Write { .. } => ApiError::internal(e.to_string()),
        E::Yaml { .. } | E::OverrideSyntax { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
    }
}

impl From<ferrotune_model::Error> for ApiError {
    fn from(e: ferrotune_model::Error) -> Self {
        use ferrotune_model::Error as E;
        let class = match &e {
            E::Data(inner) => data_class(inner),
            E::Gguf(inner) => gguf_class(inner),
            // A corrupt or truncated weights file is damage on the server's disk, not a wrong request.
            E::Io { .. }
            | E::Write { .. }
            | E::CorruptWeights { .. }
            | E::Candle(_)
            | E::WriteContract(_) => Class::Internal,
            E::NotFound { .. } => Class::User(StatusCode::NOT_FOUND),
            E::MissingConfig { .. }
            | E::NotAFolder { .. }
            | E::Json { .. }
            | E::UnsupportedArchitecture { .. }
            | E::InvalidConfig { .. }
            | E::MissingWeights { .. }
            | E::MissingShard { .. }
            | E::MissingTensor { .. }
            | E::ShapeMismatch { .. }
            | E::ConfigVocabMismatch { .. }
            | E::VocabMismatch { .. }
            | E::InvalidGeneration(_)
            | E::UnsupportedDtype(_)
            | E::QuantizedOnGpu
            | E::FullFineTuningNeedsF32 { .. }
            | E::InvalidAdapter(_) => Class::User(StatusCode::BAD_REQUEST),
        };
        class.answer(e.to_string())
    }
}

impl From<ferrotune_data::Error> for ApiError {
    fn from(e: ferrotune_data::Error) -> Self {
        data_class(&e).answer(e.to_string())
    }
}

fn data_class(e: &ferrotune_data::Error) -> Class {
    use ferrotune_data::Error as E;
    match e {
        // The tokenizer library failing on text is not something the user can fix by rewording.
        E::Io { .. } | E::Encode(_) => Class::Internal,
        E::InvalidSetting { .. } => Class::User(StatusCode::UNPROCESSABLE_ENTITY),
        E::Json { .. }
        | E::Tokenizer { .. }
        | E::NoChatTemplate
        | E::ChatTemplate(_)
        | E::UnsupportedFormat { .. }
        | E::NotUtf8 { .. }
        | E::RaggedCsv { .. }
        | E::UnclosedQuote { .. }
        | E::Csv { .. }
        | E::JsonShape { .. }
        | E::JsonLine { .. }
        | E::Parquet { .. }
        | E::CorruptParquet { .. }
        | E::EmptyDataset { .. }
        | E::MissingColumn { .. }
        | E::EmptyAnswers { .. }
        | E::NoPreference { .. }
        | E::Label { .. }
        | E::DuplicateId { .. }
        | E::MissingParent { .. }
        | E::ParentCycle { .. }
        | E::MissingSpecialToken { .. }
        | E::ChatTemplateNotIncremental { .. }
        | E::NoTrainableLabels { .. }
        | E::Split { .. }
        | E::UnknownLayout { .. }
        | E::BadConversation { .. }
        | E::NoAnswers { .. } => Class::User(StatusCode::BAD_REQUEST),
    }
}

fn gguf_class(e: &ferrotune_model::gguf::GgufError) -> Class {
    use ferrotune_model::gguf::GgufError as E;
    match e {
        E::Read { .. } | E::Write { .. } | E::Dequantize { .. } => Class::Internal,
        E::OutputExists { .. } => Class::User(StatusCode::CONFLICT),
        E::NotGguf { .. }
        | E::IsAFolder { .. }
        | E::UnsupportedVersion { .. }
        | E::Truncated { .. }
        | E::Malformed { .. }
        | E::MissingKey { .. }
        | E::WrongKeyType { .. }
        | E::UnsupportedArchitecture { .. }
        | E::UnsupportedTensorType { .. }
        | E::MissingTensor { .. }
        | E::UnexpectedTensor { .. }
        | E::TensorShape { .. }
        | E::BadHyperparameters { .. }
        | E::UnsupportedRopeScaling { .. }
        | E::UnsupportedTokenizer { .. }
        | E::BadTokenizer { .. } => Class::User(StatusCode::BAD_REQUEST),
    }
}

impl From<ferrotune_home::AssetError> for ApiError {
    fn from(e: ferrotune_home::AssetError) -> Self {
        use ferrotune_home::AssetError as E;
        let class = match &e {
            // The machine lacks what fetching needs: say so (with the fix), as a service that is unavailable.
            E::NoPython { .. } | E::PipFailed { .. } => {
                Class::User(StatusCode::SERVICE_UNAVAILABLE)
            }
            E::Checksum { .. } | E::MissingMember { .. } | E::Archive { .. } | E::Io { .. } => {
                Class::Internal
            }
        };
        class.answer(e.to_string())
    }
}

impl From<ferrotune_train::Error> for ApiError {
    fn from(e: ferrotune_train::Error) -> Self {
        use ferrotune_train::Error as E;
        match e {
            E::Setting(_)
            | E::NonFiniteLoss { .. }
            | E::NonFiniteValidation { .. }
            | E::Diverged { .. }
            | E::NonFiniteWeights { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            E::Model(m) => (*m).into(),
            E::Data(d) => (*d).into(),
            E::DemoBackbone(a) => {
                ApiError::from(a).context("cannot fetch the demo backbone this experiment trained")
            }
            E::Checkpoint { .. } | E::Io { .. } | E::Candle(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<ferrotune_engine::EngineError> for ApiError {
    fn from(e: ferrotune_engine::EngineError) -> Self {
        match e {
            ferrotune_engine::EngineError::QueueFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            ferrotune_engine::EngineError::Stopped => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            errors: &self.errors,
            warnings: &self.warnings,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(details) = self.internal_details() {
            response.extensions_mut().insert(InternalDetails(details));
        }
        response
    }
}

/// An error answered as a page (the same message, in the studio's layout).
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

/// A library message in the studio's words: its lines (the page renders their `code` spans as code), without the
/// `help:` lines that advise a CLI command (the page links to the studio's own pages).
fn studio_words(message: &str) -> (Vec<String>, Vec<String>) {
    let mut problem = Vec::new();
    let mut help = Vec::new();
    for line in message.lines().filter(|l| !l.trim().is_empty()) {
        match line.strip_prefix("help: ") {
            Some(h) if h.contains("ferrotune ") || h.contains("--") => {}
            Some(h) => help.push(h.to_string()),
            None => problem.push(line.to_string()),
        }
    }
    (problem, help)
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let details = e.internal_details();
        let (problem, help) = studio_words(&e.message);
        let html = crate::views::render(
            "error.html",
            minijinja::context! {
                title => "Error",
                status => e.status.as_u16(),
                problem => problem,
                help => help,
            },
        )
        .unwrap_or_else(|_| "error".into());
        let mut response = (e.status, Html(html)).into_response();
        if let Some(details) = details {
            response.extensions_mut().insert(InternalDetails(details));
        }
        response
    }
}
