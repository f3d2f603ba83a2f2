//! AWS requests signed with Signature Version 4, for the AWS APIs the monitor calls
//! through [`crate::rest::Rest`] like every other provider. Credentials come from the
//! SDK's default chain (`aws-config`: environment, profile with SSO / assume-role /
//! `credential_process`, web identity, container and instance roles) and are kept until
//! five minutes before they expire; the signature is the SDK's own signer (`aws-sigv4`).

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// Credentials closer than this to their expiry are fetched anew.
const EARLY: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct Signer {
    provider: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
}

/// Where a signature is valid: the region and the service's signing name (`ec2`,
/// `monitoring`, `ce`).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

impl Signer {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self { provider: sdk.credentials_provider(), cached: Mutex::new(None) }
    }

    /// A signer with fixed credentials (tests).
    #[cfg(test)]
    fn fixed(c: Credentials) -> Self {
        Self { provider: None, cached: Mutex::new(Some(c)) }
    }

    /// Sign `req` (its headers and body as they are now) for `scope`. `fresh` drops cached
    /// credentials first (the service rejected them). The error says why there are no
    /// credentials.
    pub async fn sign(&self, req: &mut reqwest::Request, scope: Scope<'_>, fresh: bool) -> Result<(), String> {
        let creds = self.credentials(fresh).await?;
        self.sign_at(req, scope, &creds, SystemTime::now())
    }

    fn sign_at(
        &self,
        req: &mut reqwest::Request,
        scope: Scope<'_>,
        creds: &Credentials,
        at: SystemTime,
    ) -> Result<(), String> {
        let identity: Identity = creds.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(scope.region)
            .name(scope.service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into();
        let headers: Vec<(&str, &str)> =
            req.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
        let body = req.body().and_then(reqwest::Body::as_bytes).unwrap_or_default();
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("cannot sign the request: {e}"))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| format!("cannot sign the request: {e}"))?.into_parts();
        let (headers, _) = instructions.into_parts();
        for h in headers {
            let mut value = reqwest::header::HeaderValue::from_str(h.value())
                .map_err(|e| format!("cannot sign the request: {} {e}", h.name()))?;
            // Never printed in a debug log: the signature and the session token.
            value.set_sensitive(h.sensitive() || h.name() == "authorization");
            req.headers_mut().insert(h.name(), value);
        }
        Ok(())
    }

    async fn credentials(&self, fresh: bool) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        let Some(provider) = &self.provider else {
            return cached.clone().ok_or_else(|| "no AWS credentials provider".to_string());
        };
        if fresh {
            *cached = None;
        }
        if let Some(c) = cached.as_ref()
            && c.expiry().is_none_or(|t| t > SystemTime::now() + EARLY)
        {
            return Ok(c.clone());
        }
        let c = provider.provide_credentials().await.map_err(|e| {
            use std::error::Error;
            format!("no AWS credentials: {}", qmoi_core::human::with_causes(e.to_string(), e.source()))
        })?;
        *cached = Some(c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's Signature Version 4 documentation (IAM `ListUsers`,
    /// 2015-08-30 12:36:00 UTC, the documentation's example key).
    #[test]
    fn signs_the_documented_example() {
        let signer = Signer::fixed(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        ));
        let client = reqwest::Client::new();
        let mut req = client
            .get("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08")
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .build()
            .unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let creds = signer.cached.try_lock().unwrap().clone().unwrap();
        signer.sign_at(&mut req, Scope { region: "us-east-1", service: "iam" }, &creds, at).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert!(req.headers()["authorization"].is_sensitive());
    }
}
