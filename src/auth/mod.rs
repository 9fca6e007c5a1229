//! Who may do what. Callers present bearer tokens; a token names a principal
//! with scopes. Which scope each RPC needs is decided at the gRPC edge
//! (`api::access`); what a principal may touch inside a scope (a job-run
//! token's one run) is decided here, in plain Rust.

mod tokens;

use std::fmt;

pub use tokens::{TokenError, TokenSet, generate_token, token_hash};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send logs.
    Write,
    /// Query and stream logs, and read job runs.
    Read,
    /// Complete job runs and manage tokens.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Write, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes. No scope implies another: an admin token that should
/// also read says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Scopes::bit(scope) != 0
    }

    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | Scopes::bit(scope))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn bit(scope: Scope) -> u8 {
        1 << scope as u8
    }

    /// Parses "read,write": comma-separated scope names.
    pub fn parse(text: &str) -> Result<Scopes, String> {
        text.split(',').map(str::trim).try_fold(Scopes::default(), |scopes, name| {
            Scope::parse(name).map(|scope| scopes.with(scope)).ok_or_else(|| {
                format!("unknown scope {name:?}; scopes are {}", Scope::ALL.map(Scope::as_str).join(", "))
            })
        })
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(scopes: I) -> Scopes {
        scopes.into_iter().fold(Scopes::default(), Scopes::with)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            Scope::ALL.into_iter().filter(|scope| self.contains(*scope)).map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// Who is calling, once their token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is off (loopback, or `--insecure-no-auth`): anything goes.
    Anyone,
    /// A configured token, by its name.
    Token { name: String, scopes: Scopes },
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        match self {
            Principal::Anyone => true,
            Principal::Token { scopes, .. } => scopes.contains(scope),
        }
    }

    /// Succeeds if this principal holds `scope`; `action` names what needs it.
    pub fn require(&self, scope: Scope, action: &str) -> Result<(), Denied> {
        if self.has(scope) { Ok(()) } else { Err(Denied::MissingScope { scope, action: action.into() }) }
    }
}

/// How the server tells callers apart.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Every caller is `Principal::Anyone`.
    Off,
    /// Every caller presents one of these tokens.
    Tokens(TokenSet),
}

impl Authentication {
    /// Who presents `bearer` (the token from `authorization: Bearer …`).
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Principal, AuthError> {
        match self {
            Authentication::Off => Ok(Principal::Anyone),
            Authentication::Tokens(tokens) => {
                let token = bearer.ok_or(AuthError::MissingToken)?;
                tokens.verify(token).ok_or(AuthError::UnknownToken)
            }
        }
    }
}

/// Why a call was not let in. None of these says whether a job run or a log
/// exists: they are decided before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send the metadata `authorization: Bearer <token>`")]
    MissingToken,
    #[error("the authorization metadata must read `Bearer <token>`")]
    MalformedHeader,
    #[error("the bearer token is not valid")]
    UnknownToken,
    #[error(transparent)]
    Denied(#[from] Denied),
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this token lacks the {scope} scope, which {action} needs")]
    MissingScope { scope: Scope, action: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_only_when_configured() {
        assert_eq!(Authentication::Off.authenticate(None), Ok(Principal::Anyone));
        let mut tokens = TokenSet::default();
        tokens.add("test", &format!("reader read {}", token_hash("secret"))).unwrap();
        let tokens = Authentication::Tokens(tokens);
        assert_eq!(tokens.authenticate(None), Err(AuthError::MissingToken));
        assert_eq!(tokens.authenticate(Some("guess")), Err(AuthError::UnknownToken));
        let reader = tokens.authenticate(Some("secret")).unwrap();
        assert_eq!(reader.require(Scope::Read, "ListLogs"), Ok(()));
        assert_eq!(
            reader.require(Scope::Write, "WriteJobLog").unwrap_err().to_string(),
            "this token lacks the write scope, which WriteJobLog needs"
        );
    }

    #[test]
    fn scopes_parse_and_print() {
        let scopes = Scopes::parse("write, read").unwrap();
        assert!(scopes.contains(Scope::Read) && scopes.contains(Scope::Write) && !scopes.contains(Scope::Admin));
        assert_eq!(scopes.to_string(), "write,read");
        assert!(Scopes::parse("read,root").unwrap_err().contains("\"root\""));
    }
}
