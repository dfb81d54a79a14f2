//! The Wisp service: the [`Handler`] behind the HTTP front end, and the set of deployed
//! functions it serves.
//!
//! A request goes through the route table to its function, becomes a WAGI invocation on the
//! worker pool, and its CGI output becomes the response. Deploys, rollbacks and deletes change
//! the registry first, then swap the whole route table at once: a request that already has its
//! function finishes on it, and no request ever sees a route missing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Instant;

use crate::admin::{self, Token};
use crate::config::FunctionConfig;
use crate::engine::{Busy, CompileError, Limit, Limits, Module, ModuleCache, Outcome, Pool, Stop};
use crate::http::{self, Handler, Request, Response};
use crate::metrics::FunctionStats;
use crate::registry::{self, FunctionRecord, Registry, RegistryError, VersionRecord};
use crate::router::{Lookup, Route, RouteError, RouteTable};
use crate::store::{Grants, Scoped, Store, namespace};
use crate::wagi::{self, RouteInfo};

/// A function version ready to serve.
pub struct Function {
    pub config: FunctionConfig,
    pub module: Arc<Module>,
    pub version: u32,
    pub hash: String,
    /// Unix seconds.
    pub deployed_at: u64,
    /// Shared by all versions of the function.
    pub stats: Arc<FunctionStats>,
    env: Vec<(String, String)>,
    /// The stores its configuration grants.
    kv: Option<Arc<Grants>>,
}

impl Function {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Why a deploy, rollback or delete did not happen. Nothing changed.
#[derive(Debug)]
pub enum DeployError {
    Config(String),
    Module(CompileError),
    /// Another function serves this route already.
    Conflict {
        route: String,
        function: String,
    },
    NotFound(String),
    Registry(RegistryError),
}

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeployError::Config(why) => f.write_str(why),
            DeployError::Module(e) => e.fmt(f),
            DeployError::Conflict { route, function } => {
                write!(
                    f,
                    "route `{route}` is already served by function `{function}`"
                )
            }
            DeployError::NotFound(what) => f.write_str(what),
            DeployError::Registry(e) => e.fmt(f),
        }
    }
}

impl From<RegistryError> for DeployError {
    fn from(e: RegistryError) -> Self {
        DeployError::Registry(e)
    }
}

type Table = RouteTable<Arc<Function>>;

/// Routes requests to functions, runs them on the pool, and manages what is deployed.
pub struct Service {
    routes: RwLock<Arc<Table>>,
    /// The serving version of each function. Changed only under `deploying`.
    functions: Mutex<BTreeMap<String, Arc<Function>>>,
    stats: Mutex<HashMap<String, Arc<FunctionStats>>>,
    /// Held through a whole deploy, rollback or delete, so they never interleave.
    deploying: Mutex<()>,
    registry: Registry,
    /// Functions and versions with the same module and limits share its compiled code.
    modules: ModuleCache,
    store: Arc<dyn Store>,
    pool: Pool,
    defaults: Limits,
    token: Token,
    pub http_stats: Arc<http::Stats>,
    /// Largest module a deploy may upload.
    pub max_module_bytes: usize,
    /// This service, for handing to blocking work (compiling, syncing files) off the I/O
    /// threads.
    me: Weak<Service>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Service {
    pub fn new(
        pool: Pool,
        registry: Registry,
        store: Arc<dyn Store>,
        defaults: Limits,
        token: Token,
        max_module_bytes: usize,
    ) -> Arc<Service> {
        Arc::new_cyclic(|me| Service {
            routes: RwLock::new(Arc::new(Table::default())),
            functions: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(HashMap::new()),
            deploying: Mutex::new(()),
            registry,
            modules: ModuleCache::default(),
            store,
            pool,
            defaults,
            token,
            http_stats: Arc::new(http::Stats::default()),
            max_module_bytes,
            me: me.clone(),
        })
    }

    /// Runs `work` on a thread where blocking is fine, with this service.
    pub(crate) async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Service) -> R + Send + 'static,
    ) -> R {
        let me = self
            .me
            .upgrade()
            .expect("a service handling requests is alive");
        smol::unblock(move || work(&me)).await
    }

    /// Serves what the registry holds; returns a line for each function that cannot be served.
    pub fn load(&self) -> Result<Vec<String>, RegistryError> {
        let _deploying = lock(&self.deploying);
        let mut problems = Vec::new();
        let mut functions = lock(&self.functions);
        for record in self.registry.functions()? {
            let active = record.active();
            match self.compile_version(active) {
                Ok(module) => {
                    functions.insert(record.name.clone(), self.serving(active, module));
                }
                Err(e) => problems.push(format!("function `{}`: {e}", record.name)),
            }
        }
        match self.table(&functions) {
            Ok(table) => self.swap(table),
            Err(e) => problems.push(e.to_string()),
        }
        Ok(problems)
    }

    /// Deploys a new version: validates and compiles it, stores it durably, then serves it.
    /// Returns the function and whether it is new.
    pub fn deploy(
        &self,
        config: FunctionConfig,
        wasm: &[u8],
    ) -> Result<(Arc<Function>, bool), DeployError> {
        config.validate().map_err(DeployError::Config)?;
        let limits = config.limits.apply(&self.defaults);
        // Hashed once, for the module cache and the registry: on a board without SHA
        // instructions a large module takes milliseconds.
        let hash = registry::hash(wasm);
        let module = self
            .modules
            .compile(&hash, wasm, limits)
            .map_err(DeployError::Module)?;
        let _deploying = lock(&self.deploying);
        let mut functions = lock(&self.functions);
        for route in &config.routes {
            let other = functions
                .values()
                .find(|f| f.name() != config.name && f.config.routes.contains(route));
            if let Some(other) = other {
                let function = other.name().to_string();
                return Err(DeployError::Conflict {
                    route: route.clone(),
                    function,
                });
            }
        }
        let (record, created) = self.registry.add_version(config, wasm, hash)?;
        let function = self.serving(record.active(), module);
        let (candidate, table) = self.with(&functions, &function)?;
        self.publish(&mut functions, candidate, table, &function);
        Ok((function, created))
    }

    /// Serves `version` of `name` again.
    pub fn rollback(&self, name: &str, version: u32) -> Result<Arc<Function>, DeployError> {
        let _deploying = lock(&self.deploying);
        let record = self.registry.get(name)?.ok_or_else(|| not_found(name))?;
        let Some(v) = record.version(version) else {
            let why = format!("function `{name}` has no version {version}");
            return Err(DeployError::NotFound(why));
        };
        let mut functions = lock(&self.functions);
        let function = self.serving(v, self.compile_version(v)?);
        let (candidate, table) = self.with(&functions, &function)?;
        self.registry.set_active(name, version)?;
        self.publish(&mut functions, candidate, table, &function);
        Ok(function)
    }

    /// Stops serving `name` and forgets it.
    pub fn remove(&self, name: &str) -> Result<(), DeployError> {
        let _deploying = lock(&self.deploying);
        if !self.registry.remove(name)? {
            return Err(not_found(name));
        }
        let mut functions = lock(&self.functions);
        functions.remove(name);
        let table = self
            .table(&functions)
            .expect("removing a function cannot add a conflict");
        self.swap(table);
        lock(&self.stats).remove(name);
        Ok(())
    }

    /// The serving version of every function, by name.
    pub fn functions(&self) -> Vec<Arc<Function>> {
        lock(&self.functions).values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        lock(&self.functions).get(name).cloned()
    }

    /// The registry's record of `name`: all kept versions.
    pub fn record(&self, name: &str) -> Result<Option<FunctionRecord>, RegistryError> {
        self.registry.get(name)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A namespace of a store, for the operator: `owner` is a function's name, or `None` for
    /// the store's shared namespace.
    pub fn kv_namespace(&self, store: &str, owner: Option<&str>) -> Scoped {
        Scoped::new(self.store.clone(), namespace(store, owner))
    }

    pub(crate) fn token(&self) -> &Token {
        &self.token
    }

    /// The stats of `name`, by name: a function that is not deployed has none.
    pub fn stats(&self, name: &str) -> Option<Arc<FunctionStats>> {
        lock(&self.stats).get(name).cloned()
    }

    fn stats_for(&self, name: &str) -> Arc<FunctionStats> {
        lock(&self.stats)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn compile_version(&self, v: &VersionRecord) -> Result<Arc<Module>, DeployError> {
        let limits = v.config.limits.apply(&self.defaults);
        if let Some(module) = self.modules.get(&v.hash, &limits) {
            return Ok(module);
        }
        let wasm = self.registry.module(&v.hash)?;
        let module = self.modules.compile(&v.hash, &wasm, limits);
        module.map_err(DeployError::Module)
    }

    /// The function that serves version `v` with its compiled `module`.
    fn serving(&self, v: &VersionRecord, module: Arc<Module>) -> Arc<Function> {
        let config = v.config.clone();
        let (private, shared) = (config.private_stores(), &config.shared_stores);
        let grants = Grants::new(&self.store, &config.name, &private, shared);
        Arc::new(Function {
            env: config.env_pairs(),
            kv: (!grants.is_empty()).then(|| Arc::new(grants)),
            stats: self.stats_for(&config.name),
            module,
            version: v.version,
            hash: v.hash.clone(),
            deployed_at: v.deployed_at,
            config,
        })
    }

    /// The functions with `function` in, and their route table; nothing changes yet.
    fn with(
        &self,
        functions: &BTreeMap<String, Arc<Function>>,
        function: &Arc<Function>,
    ) -> Result<(BTreeMap<String, Arc<Function>>, Table), DeployError> {
        let mut candidate = functions.clone();
        candidate.insert(function.name().to_string(), function.clone());
        let table = self.table(&candidate)?;
        Ok((candidate, table))
    }

    /// Serves `candidate` from now on.
    fn publish(
        &self,
        functions: &mut BTreeMap<String, Arc<Function>>,
        candidate: BTreeMap<String, Arc<Function>>,
        table: Table,
        changed: &Function,
    ) {
        *functions = candidate;
        self.swap(table);
        changed
            .stats
            .deploys
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The route table of `functions`, or the conflict that prevents it.
    fn table(&self, functions: &BTreeMap<String, Arc<Function>>) -> Result<Table, DeployError> {
        let routes = functions
            .values()
            .flat_map(|f| {
                f.config.routes.iter().map(|pattern| Route {
                    pattern: pattern.clone(),
                    methods: f.config.methods.clone(),
                    cors: f.config.cors.clone(),
                    target: f.clone(),
                })
            })
            .collect();
        RouteTable::new(routes).map_err(|e| match e {
            RouteError::Duplicate(route) => {
                let mut owners = functions
                    .values()
                    .filter(|f| f.config.routes.contains(&route));
                let function = owners
                    .next()
                    .map_or_else(String::new, |f| f.name().to_string());
                DeployError::Conflict { route, function }
            }
            RouteError::Invalid(_) => DeployError::Config(e.to_string()),
        })
    }

    fn swap(&self, table: Table) {
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    fn current_table(&self) -> Arc<Table> {
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
        let mut invocation = wagi::invocation(request, &info, &function.env);
        invocation.kv = function.kv.clone();
        let started = Instant::now();
        let mut response = match self.pool.submit(function.module.clone(), invocation) {
            Ok(ticket) => {
                let outcome = ticket.outcome().await;
                let (fuel, memory) = (outcome.fuel_used, outcome.memory_bytes);
                let synced = match (&function.kv, outcome.kv_wrote) {
                    (Some(kv), true) => {
                        let kv = kv.clone();
                        smol::unblock(move || kv.sync()).await
                    }
                    _ => Ok(()),
                };
                let response = match synced {
                    Ok(()) => respond(function, outcome),
                    Err(e) => {
                        let why = format!("wisp: its writes could not be made durable: {e}");
                        function.stats.log.push(function.name(), &why);
                        Response::text(500, format!("function `{}`: {why}\n", function.name()))
                    }
                };
                function
                    .stats
                    .record(response.status, started.elapsed(), fuel, memory);
                response
            }
            Err(Busy) => Response::text(503, "all workers are busy; try again shortly\n")
                .header("Retry-After", "1"),
        };
        if let Some(cors) = &route.cors {
            cors.response_headers(origin.as_deref(), &mut response.headers);
        }
        response
    }
}

fn not_found(name: &str) -> DeployError {
    DeployError::NotFound(format!("no function `{name}`"))
}

impl Handler for Service {
    async fn handle(&self, request: Request) -> Response {
        if request.path == "/healthz" {
            return Response::text(200, "ok\n");
        }
        if admin::is_admin_path(&request.path) {
            return admin::handle(self, request).await;
        }
        let table = self.current_table();
        self.invoke(request, &table).await
    }

    fn body_limit(&self, method: &str, path: &str) -> Option<usize> {
        (method == "PUT" && admin::is_admin_path(path)).then_some(self.max_module_bytes)
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
    let log = &function.stats.log;
    log.guest_output(name, &outcome.stderr);
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
    log.push(name, &format!("wisp: {why}"));
    Response::text(status, format!("function `{name}` {why}\n"))
}
