//! The Wisp service: the [`Handler`] behind the HTTP front end. A request goes through the
//! route table to its function, becomes a WAGI invocation on the worker pool, and its CGI
//! output becomes the response.

use std::sync::{Arc, RwLock};

use crate::config::FunctionConfig;
use crate::engine::{Busy, Limit, Module, Outcome, Pool, Stop};
use crate::http::{Handler, Request, Response};
use crate::logs::FunctionLog;
use crate::router::{Lookup, Route, RouteError, RouteTable};
use crate::wagi::{self, RouteInfo};

/// A function ready to serve: its configuration, its compiled module and its log.
pub struct Function {
    pub config: FunctionConfig,
    pub module: Arc<Module>,
    pub log: FunctionLog,
    env: Vec<(String, String)>,
}

impl Function {
    pub fn new(config: FunctionConfig, module: Arc<Module>) -> Function {
        let env = config.env_pairs();
        Function {
            config,
            module,
            log: FunctionLog::default(),
            env,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }
}

type Table = RouteTable<Arc<Function>>;

/// Routes requests to functions and runs them on the pool.
pub struct Service {
    routes: RwLock<Arc<Table>>,
    pool: Pool,
}

impl Service {
    pub fn new(pool: Pool) -> Service {
        Service {
            routes: RwLock::new(Arc::new(Table::default())),
            pool,
        }
    }

    /// Serves exactly these functions from now on. Requests already routed finish on the
    /// functions they started with.
    pub fn install(&self, functions: &[Arc<Function>]) -> Result<(), RouteError> {
        let routes = functions
            .iter()
            .flat_map(|f| {
                f.config.routes.iter().map(|pattern| Route {
                    pattern: pattern.clone(),
                    methods: f.config.methods.clone(),
                    cors: f.config.cors.clone(),
                    target: f.clone(),
                })
            })
            .collect();
        let table = Arc::new(RouteTable::new(routes)?);
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = table;
        Ok(())
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn table(&self) -> Arc<Table> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn invoke(&self, request: Request, table: &Table) -> Response {
        let origin = request
            .header("origin")
            .map(|o| String::from_utf8_lossy(o).into_owned());
        let (route, split) = match table.lookup(&request.method, &request.path) {
            Lookup::NotFound => {
                return Response::text(404, format!("no route for {}\n", request.path));
            }
            Lookup::MethodNotAllowed(m, allow) => {
                if request.method == "OPTIONS" && m.route.cors.is_some() {
                    return preflight(&request, m.route, origin.as_deref());
                }
                return Response::text(405, format!("{} is not allowed here\n", request.method))
                    .header("Allow", allow);
            }
            Lookup::Found(m) => {
                if is_preflight(&request) && m.route.cors.is_some() {
                    return preflight(&request, m.route, origin.as_deref());
                }
                (m.route, m.split)
            }
        };
        let function = &route.target;
        let info = RouteInfo {
            function: function.name(),
            pattern: &route.pattern,
            split,
        };
        let invocation = wagi::invocation(request, &info, &function.env);
        let mut response = match self.pool.submit(function.module.clone(), invocation) {
            Ok(ticket) => respond(function, ticket.outcome().await),
            Err(Busy) => Response::text(503, "all workers are busy; try again shortly\n")
                .header("Retry-After", "1"),
        };
        if let Some(cors) = &route.cors {
            cors.response_headers(origin.as_deref(), &mut response.headers);
        }
        response
    }
}

impl Handler for Service {
    async fn handle(&self, request: Request) -> Response {
        if request.path == "/healthz" {
            return Response::text(200, "ok\n");
        }
        if request.path == "/_wisp" || request.path.starts_with("/_wisp/") {
            return Response::text(404, "no such admin endpoint\n");
        }
        let table = self.table();
        self.invoke(request, &table).await
    }
}

fn is_preflight(request: &Request) -> bool {
    request.method == "OPTIONS" && request.header("access-control-request-method").is_some()
}

fn preflight(request: &Request, route: &Route<Arc<Function>>, origin: Option<&str>) -> Response {
    let cors = route.cors.as_ref().expect("preflight only on CORS routes");
    let asked = request
        .header("access-control-request-headers")
        .map(String::from_utf8_lossy);
    let mut response = Response::new(204);
    response.headers = cors.preflight_headers(origin, &route.methods, asked.as_deref());
    response
}

/// Turns an outcome into the response, logging the guest's stderr and any failure.
fn respond(function: &Function, outcome: Outcome) -> Response {
    let name = function.name();
    function.log.guest_output(name, &outcome.stderr);
    let failure = match outcome.result {
        Ok(0) => match wagi::response(outcome.stdout) {
            Ok(response) => return response,
            Err(why) => (500, format!("returned a malformed response: {why}")),
        },
        Ok(code) => (500, format!("exited with status {code}")),
        Err(Stop::Limit(limit @ Limit::Timeout(_))) => (504, format!("stopped: {limit}")),
        Err(stop) => (500, format!("stopped: {stop}")),
    };
    let (status, why) = failure;
    function.log.push(name, &format!("wisp: {why}"));
    Response::text(status, format!("function `{name}` {why}\n"))
}
