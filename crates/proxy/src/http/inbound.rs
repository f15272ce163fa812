//! The inbound side: a request from the mesh to the local app. Admission first — STRICT
//! mTLS, RequestAuthentication (`401`), AuthorizationPolicy (`403 RBAC`), RateLimit
//! (`429 RL`) — then the request goes to the app as it came, once, in the client's protocol
//! (as Istio configures the inbound cluster). A gateway authenticates and admits its
//! requests the same way and then routes them as the outbound side does.

use http::{Request, Response};
use hyper::body::Incoming;

use super::body::Body;
use super::call::Call;
use super::forward::{self, Outgoing};
use super::headers::{self, authority_of};
use super::local_reply::{LocalReply, Reason};
use super::respond::{self, Edits};
use super::{authenticate, authorize, rate_limit, upgrade};
use crate::telemetry::Observation;

/// Admits the request and sends it to the local app.
pub async fn serve(
    call: Call<'_>,
    mut req: Request<Incoming>,
    obs: &mut Observation,
) -> Result<Response<Body>, LocalReply> {
    let snapshot = call.snapshot;
    headers::append_forwarded_for(req.headers_mut(), call.down.peer.ip());
    name_the_caller(call, &mut req, obs);
    let cluster = snapshot.inbound.as_ref().ok_or(Reason::NoLocalApp)?;
    // A plaintext connection accepted before STRICT applied gets no more requests.
    if call.principal.is_none()
        && snapshot.mesh.peer_authn.mode_on(cluster.model.port)
            == weft_model::peer_authn::Mode::Strict
    {
        call.telemetry.metrics.strict_refused();
        return Err(Reason::StrictPlaintext.into());
    }
    let auth = authenticate::check(snapshot, &call.settings.jwks, &mut req).await?;
    let caller = authorize::Caller {
        peer: call.down.peer.ip(),
        principal: call.principal,
        destination: call.down.original_dst,
        port: cluster.model.port,
        auth: auth.as_ref(),
    };
    let trusted = call.settings.trusted_proxies;
    let allowed = authorize::custom(
        snapshot,
        &call.settings.ext_authz,
        &mut req,
        caller,
        trusted,
    )
    .await?;
    admit(call, &req, caller)?;
    if let Some(span) = &mut obs.details {
        span.cluster = Some(cluster.model.name.clone());
        span.port = Some(cluster.model.port);
    }
    let authority = authority_of(&req).unwrap_or_default();
    let out = Outgoing::from_request(&mut req, authority, None);
    let resp = if call.upgrade {
        Box::pin(upgrade::websocket(cluster, out, req, call.identity())).await?
    } else {
        let up = forward::send_once(cluster, &out, req, call.identity()).await?;
        respond::respond(up, Edits::default())
    };
    Ok(with_headers(resp, allowed))
}

/// `resp` with the headers an external authorizer's allowing answer named for it.
pub fn with_headers(mut resp: Response<Body>, add: authorize::ResponseHeaders) -> Response<Body> {
    for (name, value) in add {
        resp.headers_mut().append(name, value);
    }
    resp
}

/// The server side's admission: AuthorizationPolicy, then RateLimit.
pub fn admit(
    call: Call<'_>,
    req: &Request<Incoming>,
    caller: authorize::Caller<'_>,
) -> Result<(), LocalReply> {
    authorize::check(call.snapshot, req, caller, call.settings.trusted_proxies)?;
    rate_limit::check(call.snapshot, req, caller.principal)
}

/// Who is calling and which service they called, for telemetry: the peer header the
/// caller's sidecar sent, overruled by the mTLS identity; the service this workload
/// serves, else the one the caller named.
fn name_the_caller(call: Call<'_>, req: &mut Request<Incoming>, obs: &mut Observation) {
    obs.peer = call.telemetry.take_peer(req.headers_mut());
    // Over mTLS the certificate says who is calling; the header only adds labels.
    if let Some(p) = call.principal {
        if !obs.peer.has_principal(p) {
            obs.peer = call.telemetry.peer_of_principal(p);
        }
    }
    let snapshot = call.snapshot;
    if let Some(service) = snapshot.local_service.clone().or_else(|| {
        authority_of(req).and_then(|a| {
            snapshot
                .service_names
                .get(weft_model::host::authority_host(&a))
                .cloned()
        })
    }) {
        obs.service = service;
    }
}
