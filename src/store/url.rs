//! Database URLs: whether logwell can open one, and how it is shown in logs
//! and errors (never with a credential in it).

use super::StoreError;

/// Query parameters that carry a credential, in any case: the password
/// forms sqlx's PostgreSQL driver reads, and the usual spellings of others.
const SECRET_PARAMETERS: [&str; 6] = ["password", "sslpassword", "passwd", "pwd", "secret", "token"];

/// Checks that `url` names a database logwell can open, without connecting
/// (`logwell serve --check-config`).
pub fn check_url(url: &str) -> Result<(), StoreError> {
    use std::str::FromStr;
    let parsed = if url.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(url).map(drop)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        sqlx::postgres::PgConnectOptions::from_str(url).map(drop)
    } else {
        return Err(StoreError::UnsupportedUrl(redacted(url)));
    };
    parsed.map_err(|error| StoreError::BadUrl(redacted(&error.to_string())))
}

/// `url` without its credentials: the password of `user:password@` and the
/// value of every credential query parameter become `***`.
pub fn redacted(url: &str) -> String {
    let (address, query) = match url.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (url, None),
    };
    let mut shown = match (address.find("://"), address.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let user_info = &address[scheme_end + 3..at];
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &address[..scheme_end + 3], &address[at..])
        }
        _ => address.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if SECRET_PARAMETERS.contains(&key.to_ascii_lowercase().as_str()) => {
                    format!("{key}=***")
                }
                _ => parameter.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&parameters.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        assert_eq!(redacted("postgres://logwell:s3cret@db:5432/logs"), "postgres://logwell:***@db:5432/logs");
        assert_eq!(
            redacted("postgres://db/logs?user=logwell&password=s3cret&sslmode=require&SSLPassword=k3y"),
            "postgres://db/logs?user=logwell&password=***&sslmode=require&SSLPassword=***"
        );
        assert_eq!(redacted("postgres://u:p@db/logs?password=again"), "postgres://u:***@db/logs?password=***");
        assert_eq!(redacted("sqlite:data/logwell.db?mode=rwc"), "sqlite:data/logwell.db?mode=rwc");
        let refused = check_url("mysql://root:hunter2@db/logs").expect_err("unsupported").to_string();
        assert!(!refused.contains("hunter2"), "{refused}");
        assert!(check_url("postgres://u:p@db/logs?sslmode=require").is_ok());
        assert!(check_url("sqlite:data/logwell.db").is_ok());
    }
}
