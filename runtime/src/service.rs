//! The server's request handler: the one [`Handler`] behind the HTTP front end. It sends each
//! request where it belongs: `/healthz`, the results of asynchronous calls, the dashboard's
//! page, the admin API, or
//! a function's route through the HTTP trigger.

use std::sync::Arc;

use crate::admin::{self, Admin};
use crate::fleet::Fleet;
use crate::http::{self, Handler, Request, Response};
use crate::triggers::{self, Context};
use crate::ui;

pub struct Service {
    ctx: Arc<Context>,
    admin: Admin,
    /// Largest module a deploy may upload.
    max_module_bytes: usize,
}

impl Service {
    pub fn new(
        ctx: Arc<Context>,
        token: admin::Token,
        max_module_bytes: usize,
        fleet: Option<Arc<Fleet>>,
        device: admin::Device,
    ) -> Service {
        let admin = Admin {
            ctx: ctx.clone(),
            token,
            http_stats: Arc::new(http::Stats::default()),
            fleet,
            device,
        };
        Service {
            ctx,
            admin,
            max_module_bytes,
        }
    }

    /// The front end's counters, which the metrics report.
    pub fn http_stats(&self) -> Arc<http::Stats> {
        self.admin.http_stats.clone()
    }
}

impl Handler for Service {
    async fn handle(&self, request: Request) -> Response {
        if request.path == "/healthz" {
            return health(self.admin.fleet.as_deref());
        }
        if request.path.starts_with(triggers::http::RESULTS_PREFIX) {
            return triggers::http::result(&self.ctx, &request).await;
        }
        if ui::is_ui_path(&request.path) {
            return ui::serve(&request);
        }
        if admin::is_admin_path(&request.path) {
            return admin::handle(&self.admin, request).await;
        }
        triggers::http::handle(&self.ctx, request).await
    }

    fn body_limit(&self, method: &str, path: &str) -> Option<usize> {
        (method == "PUT" && admin::is_admin_path(path)).then_some(self.max_module_bytes)
    }
}

/// `ok`, and for a device in a fleet whether it reaches the fleet's Redis. Always `200`: a
/// device that lost Redis still serves its functions.
fn health(fleet: Option<&Fleet>) -> Response {
    let Some(fleet) = fleet else {
        return Response::text(200, "ok\n");
    };
    let name = fleet.name();
    let text = match fleet.trouble() {
        None if fleet.connected() => format!("ok\nfleet {name}: connected\n"),
        None => format!("ok\nfleet {name}: connecting\n"),
        Some((why, away)) => format!(
            "ok\nfleet {name}: disconnected for {} s: {why}\n",
            away.as_secs()
        ),
    };
    Response::text(200, text)
}
