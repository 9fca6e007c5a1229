//! Configured bearer tokens. logwell keeps only their SHA-256 hashes, so a
//! leaked configuration file or environment grants nothing; tokens are long
//! random strings, so a fast hash is enough.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Principal, Scopes};

/// Random bytes in a generated token.
const TOKEN_BYTES: usize = 32;

/// The tokens a server accepts: one per line, `NAME SCOPES SHA256-HEX`,
/// with `#` starting a comment. Clones share one set, so that a reload
/// (`replace_with`) reaches every holder at once.
#[derive(Debug, Default, Clone)]
pub struct TokenSet {
    tokens: Arc<RwLock<Vec<ConfiguredToken>>>,
}

#[derive(Debug, Clone)]
struct ConfiguredToken {
    name: String,
    scopes: Scopes,
    hash: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("{origin} line {line}: {problem}")]
    Config { origin: String, line: usize, problem: String },
    #[error("cannot read random bytes for a token: {0}")]
    Random(String),
}

impl TokenSet {
    /// Adds the tokens in `text` (a tokens file, or the environment variable);
    /// `origin` names it in errors. Entries may also be separated by `;`.
    pub fn add(&mut self, origin: &str, text: &str) -> Result<(), TokenError> {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        for (index, line) in text.lines().enumerate() {
            for entry in line.split('#').next().unwrap_or_default().split(';') {
                let fail = |problem: String| TokenError::Config { origin: origin.into(), line: index + 1, problem };
                let fields: Vec<&str> = entry.split_whitespace().collect();
                let [name, scopes, hash] = fields[..] else {
                    if fields.is_empty() {
                        continue;
                    }
                    return Err(fail(format!("expected NAME SCOPES SHA256-HEX, found {} fields", fields.len())));
                };
                let scopes = Scopes::parse(scopes).map_err(fail)?;
                let hash = parse_hash(hash).ok_or_else(|| {
                    fail("the hash must be 64 hex digits: the SHA-256 of the token (`logwell token hash`)".into())
                })?;
                if tokens.iter().any(|token| token.name == name) {
                    return Err(fail(format!("the name {name:?} is used twice")));
                }
                tokens.push(ConfiguredToken { name: name.into(), scopes, hash });
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.read().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Makes this set (and every clone of it) hold what `fresh` holds.
    pub fn replace_with(&self, fresh: &TokenSet) {
        let tokens = fresh.tokens.read().unwrap_or_else(PoisonError::into_inner).clone();
        *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = tokens;
    }

    /// The principal `token` names, if any. Compares against every configured
    /// hash in constant time, so timing tells nothing about near misses.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        let mut found = None;
        for configured in tokens.iter() {
            if bool::from(configured.hash.ct_eq(&presented)) {
                found = Some(configured);
            }
        }
        found.map(|token| Principal::Token { name: token.name.clone(), scopes: token.scopes })
    }
}

/// A tokens file (`--tokens-file`), with the tokens given inline
/// (`--tokens`), reloaded into `set` when the file changes: tokens rotate
/// without a restart.
#[derive(Debug)]
pub struct TokensFile {
    path: PathBuf,
    inline: Option<String>,
    set: TokenSet,
    /// The SHA-256 of the file as last loaded.
    loaded: RwLock<[u8; 32]>,
}

impl TokensFile {
    /// Loads `path` (and `inline`) into a new set.
    pub fn load(path: PathBuf, inline: Option<String>) -> Result<TokensFile, TokenError> {
        let file = TokensFile { path, inline, set: TokenSet::default(), loaded: RwLock::new([0; 32]) };
        let (fresh, digest) = file.read()?;
        file.set.replace_with(&fresh);
        *file.loaded.write().unwrap_or_else(PoisonError::into_inner) = digest;
        Ok(file)
    }

    /// The set the file fills, shared with whoever holds a clone.
    pub fn set(&self) -> TokenSet {
        self.set.clone()
    }

    fn read(&self) -> Result<(TokenSet, [u8; 32]), TokenError> {
        let origin = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|error| TokenError::Config {
            origin: origin.clone(),
            line: 0,
            problem: error.to_string(),
        })?;
        let mut fresh = TokenSet::default();
        fresh.add(&origin, &text)?;
        if let Some(inline) = &self.inline {
            fresh.add("LOGWELL_TOKENS", inline)?;
        }
        Ok((fresh, Sha256::digest(text.as_bytes()).into()))
    }
}

impl crate::reload::Reloadable for TokensFile {
    fn what(&self) -> &'static str {
        "tokens"
    }

    fn changed_on_disk(&self) -> bool {
        let digest: Option<[u8; 32]> = std::fs::read(&self.path).ok().map(|bytes| Sha256::digest(&bytes).into());
        digest.is_some_and(|digest| digest != *self.loaded.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn reload(&self) -> Result<(), String> {
        let (fresh, digest) = self.read().map_err(|error| error.to_string())?;
        if fresh.is_empty() {
            return Err(format!("{} holds no tokens", self.path.display()));
        }
        self.set.replace_with(&fresh);
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = digest;
        Ok(())
    }
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(hash)
}

/// The SHA-256 of a token, in hex: what a tokens file holds.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A new random token: `lw_` and 32 bytes from the operating system's
/// generator, base64url.
pub fn generate_token() -> Result<String, TokenError> {
    use base64::Engine;
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
    Ok(format!("lw_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;

    #[test]
    fn a_configured_token_names_its_principal() {
        let token = generate_token().unwrap();
        let mut set = TokenSet::default();
        let text = format!(
            "# name scopes hash\nci write,read {}  # the runner\n\nops admin {}",
            token_hash(&token),
            "0".repeat(64)
        );
        set.add("tokens file", &text).unwrap();
        let Some(Principal::Token { name, scopes }) = set.verify(&token) else { panic!("token not accepted") };
        assert_eq!(name, "ci");
        assert!(scopes.contains(Scope::Write) && scopes.contains(Scope::Read) && !scopes.contains(Scope::Admin));
        assert_eq!(set.verify("lw_something_else"), None);
        assert_eq!(set.verify(&token_hash(&token)), None, "the hash itself is not a token");
    }

    #[test]
    fn entries_may_share_a_line() {
        let mut set = TokenSet::default();
        set.add("LOGWELL_TOKENS", &format!("a read {};b write {}", token_hash("x"), token_hash("y"))).unwrap();
        assert!(matches!(set.verify("y"), Some(Principal::Token { name, .. }) if name == "b"));
    }

    #[test]
    fn mistakes_name_their_line() {
        let mut set = TokenSet::default();
        let error = set.add("tokens.txt", &format!("ok read {}\nbad read 1234", token_hash("x"))).unwrap_err();
        assert!(error.to_string().starts_with("tokens.txt line 2: the hash must be 64 hex digits"), "{error}");
        let error = set.add("tokens.txt", "x superuser 00").unwrap_err();
        assert!(error.to_string().contains("unknown scope \"superuser\""), "{error}");
        let error = set.add("tokens.txt", &format!("ok write {}", token_hash("z"))).unwrap_err();
        assert!(error.to_string().contains("used twice"), "{error}");
    }

    #[test]
    fn generated_tokens_differ() {
        let (a, b) = (generate_token().unwrap(), generate_token().unwrap());
        assert!(a.starts_with("lw_") && a.len() == 46 && a != b, "{a} {b}");
    }
}
