//! OAuth2 access tokens for Azure and GCP, cached until shortly before they expire and
//! refreshed once when an API answers 401.
//!
//! - Azure service principal: client-credentials grant at
//!   `{login}/{tenant}/oauth2/v2.0/token`.
//! - Azure managed identity: the instance metadata service
//!   (`/metadata/identity/oauth2/token`, header `Metadata: true`).
//! - GCP service account: a JWT signed with the key file's RSA key (RS256), exchanged at
//!   the key's `token_uri` (`urn:ietf:params:oauth:grant-type:jwt-bearer`).
//! - GCP metadata server: `/computeMetadata/v1/instance/service-accounts/default/token`
//!   (header `Metadata-Flavor: Google`).

use crate::model::{ApiError, ErrorKind};
use crate::rest::{Bearer, Call, RequestAuth, Rest};
use base64::Engine;
use qmoi_core::config::Secret;
use reqwest::Method;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Refresh this long before the token expires.
const MARGIN: Duration = Duration::from_secs(300);

/// GCP scopes: read-only compute and monitoring, BigQuery for the billing export query.
pub const GCP_SCOPES: &str = "https://www.googleapis.com/auth/compute.readonly https://www.googleapis.com/auth/monitoring.read https://www.googleapis.com/auth/bigquery.readonly";

#[derive(Debug)]
pub enum Grant {
    AzureSecret { url: String, client_id: String, secret: Secret, scope: String },
    AzureIdentity { url: String },
    GcpKey { key: Box<GcpKey>, token_url: String },
    GcpMetadata { url: String },
}

/// The parts of a GCP service-account key file we use.
#[derive(Deserialize)]
pub struct GcpKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub private_key_id: Option<String>,
}

impl std::fmt::Debug for GcpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpKey").field("client_email", &self.client_email).field("private_key", &"***").finish()
    }
}

impl GcpKey {
    pub fn load(path: &str) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("cannot read the service-account key {path}: {e}"))?;
        let key: GcpKey = serde_json::from_slice(&text).map_err(|e| {
            format!("{path} is not a service-account key file (JSON with client_email, private_key): {e}")
        })?;
        key.signer().map_err(|e| format!("{path}: {e}"))?;
        Ok(key)
    }

    fn signer(&self) -> Result<aws_lc_rs::signature::RsaKeyPair, String> {
        let der = pem_body(&self.private_key).ok_or("private_key is not a PEM 'PRIVATE KEY' block")?;
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("private_key is not an RSA PKCS#8 key: {e}"))
    }

    /// The signed JWT assertion for the token endpoint `aud`.
    pub fn assertion(&self, aud: &str, now: i64) -> Result<String, String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": GCP_SCOPES,
            "aud": aud,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()));
        let signer = self.signer()?;
        let mut sig = vec![0u8; signer.public_modulus_len()];
        signer
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing the JWT failed".to_string())?;
        Ok(format!("{signing_input}.{}", b64.encode(sig)))
    }
}

/// The DER inside a PEM `-----BEGIN PRIVATE KEY-----` block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem[start..].find("-----END PRIVATE KEY-----")? + start;
    let b64: String = pem[start..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[derive(Debug)]
pub struct TokenSource {
    grant: Grant,
    cached: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl Bearer for TokenSource {
    fn token<'a>(
        &'a self,
        rest: &'a Rest,
        rejected: Option<&'a str>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, ApiError>> + Send + 'a>> {
        Box::pin(self.get(rest, rejected))
    }
}

impl TokenSource {
    pub fn new(grant: Grant) -> Self {
        Self { grant, cached: Mutex::new(None) }
    }

    /// A valid token: the cached one, or a new one when it is about to expire or is
    /// `rejected` (an API answered 401 to it). Requests in flight together that all got
    /// 401 for the same token cause one refresh, not one each.
    pub async fn get(&self, rest: &Rest, rejected: Option<&str>) -> Result<String, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
            && rejected != Some(t.as_str())
        {
            return Ok(t.clone());
        }
        let answer = self.fetch(rest).await?;
        let lifetime = answer
            .expires_in
            .as_ref()
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .unwrap_or(3600);
        let lifetime = Duration::from_secs(lifetime);
        // Refresh 5 minutes early, or half-way through a short-lived token.
        let until = Instant::now() + lifetime.saturating_sub(MARGIN.min(lifetime / 2));
        *cached = Some((answer.access_token.clone(), until));
        Ok(answer.access_token)
    }

    async fn fetch(&self, rest: &Rest) -> Result<TokenAnswer, ApiError> {
        match &self.grant {
            Grant::AzureSecret { url, client_id, secret, scope } => {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.expose()),
                    ("scope", scope.as_str()),
                ];
                let call =
                    Call { form: Some(&form), method: Method::POST, ..Call::get(url.clone(), "oauth2:token", "") };
                rest.json(&call, RequestAuth::None).await
            }
            Grant::AzureIdentity { url } => {
                let call = Call { headers: &[("Metadata", "true")], ..Call::get(url.clone(), "imds:token", "") };
                rest.json(&call, RequestAuth::None).await
            }
            Grant::GcpKey { key, token_url } => {
                let now = chrono::Utc::now().timestamp();
                let assertion = key.assertion(token_url, now).map_err(|message| ApiError {
                    api: "oauth2:token".into(),
                    scope: String::new(),
                    kind: ErrorKind::Credentials,
                    message,
                })?;
                let form =
                    [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
                let call = Call {
                    form: Some(&form),
                    method: Method::POST,
                    ..Call::get(token_url.clone(), "oauth2:token", "")
                };
                rest.json(&call, RequestAuth::None).await
            }
            Grant::GcpMetadata { url } => {
                let call =
                    Call { headers: &[("Metadata-Flavor", "Google")], ..Call::get(url.clone(), "metadata:token", "") };
                rest.json(&call, RequestAuth::None).await
            }
        }
        .map_err(|mut e| {
            // A token endpoint refusing us is a credentials problem, whatever the code.
            if matches!(e.kind, ErrorKind::Failed | ErrorKind::Denied) {
                e.kind = ErrorKind::Credentials;
            }
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;

    #[test]
    fn the_jwt_assertion_verifies_with_the_public_key() {
        let pair = aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        );
        let key = GcpKey {
            client_email: "mon@p.iam.gserviceaccount.com".into(),
            private_key: pem,
            token_uri: None,
            project_id: None,
            private_key_id: Some("k1".into()),
        };
        let jwt = key.assertion("https://oauth2.googleapis.com/token", 1_800_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
        assert_eq!(claims["iss"], "mon@p.iam.gserviceaccount.com");
        assert_eq!(claims["exp"], 1_800_003_600);
        let sig = b64.decode(parts[2]).unwrap_or_default();
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public_key().as_ref(),
        );
        assert!(public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).is_ok());
        assert!(pem_body("not a key").is_none());
    }
}
