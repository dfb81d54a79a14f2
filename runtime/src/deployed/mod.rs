//! The deployed set: the functions that serve, their versions, and the operations that change
//! them (deploy, rollback, delete). The admin API, the manifest and the fleet change it; the
//! triggers read it.
//!
//! A device in a fleet does not number its versions itself: the fleet's log does, and every
//! device applies the log's entries through [`Deployed::apply_version`] and
//! [`Deployed::remove_marked`], which commit the entry's mark with the change.
//!
//! A change goes to the registry first, durably, then swaps the whole route table at once: a
//! request that already has its function finishes on it, and no request ever sees a route
//! missing. The same change updates what the events need in the same step: the topic table,
//! and the key-value watches (so a write made after a deploy returns reaches a new watcher);
//! then it signals the triggers, which start and stop their dispatchers and timers.
//!
//! A function's secrets are part of its environment, built when the serving [`Function`] is:
//! setting or deleting one serves the same version anew, with the new environment, the way a
//! rollback swaps it in; an invocation that has its function already finishes with the old.

mod error;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::config::FunctionConfig;
use crate::engine::{Admit, Limits, Module, ModuleCache};
use crate::metrics::FunctionStats;
use crate::outbound::Outbound;
use crate::registry::{
    self, FunctionRecord, Mark, Registry, RegistryError, SecretError, Secrets, VersionRecord,
};
use crate::router::{Route, RouteError, RouteTable};
use crate::store::queues::{QueueKey, Source, Watch};
use crate::store::{Backend, Grants, Scoped, namespace};
use crate::topics::{Allowed, Topics};
pub use error::DeployError;
use error::{conflict, not_found};

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
    /// The environment its configuration adds, less the names its secrets take: a secret
    /// wins over an `env` entry of the same name.
    pub env: Vec<(String, String)>,
    /// Its secrets, as `NAME=VALUE`. The invocation path adds them to every invocation's
    /// environment as it runs it, so that they are never stored with a queued call.
    pub secrets: Vec<String>,
    /// The stores its configuration grants.
    pub kv: Option<Arc<Grants>>,
    /// The topics it may publish to.
    pub admit: Option<Arc<dyn Admit>>,
    /// The origins it may call over HTTP.
    pub outbound: Option<Arc<Outbound>>,
}

impl Function {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The names of its secrets, sorted; never their values.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .map(|var| var.split_once('=').map_or(var.as_str(), |(name, _)| name))
    }
}

/// The route table of the serving functions.
pub type Table = RouteTable<Arc<Function>>;

/// The deployed functions, and the operations that change them.
pub struct Deployed {
    routes: RwLock<Arc<Table>>,
    /// The serving version of each function. Changed only under `deploying`.
    functions: Mutex<BTreeMap<String, Arc<Function>>>,
    stats: Mutex<HashMap<String, Arc<FunctionStats>>>,
    /// Held through a whole deploy, rollback or delete, so they never interleave.
    deploying: Mutex<()>,
    registry: Registry,
    /// Functions and versions with the same module and limits share its compiled code.
    modules: ModuleCache,
    backend: Arc<dyn Backend>,
    topics: Arc<Topics>,
    defaults: Limits,
    /// Counts changes; [`Deployed::changed`] fires after each.
    generation: AtomicU64,
    changed: event_listener::Event,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Deployed {
    pub fn new(
        registry: Registry,
        backend: Arc<dyn Backend>,
        topics: Arc<Topics>,
        defaults: Limits,
    ) -> Deployed {
        Deployed {
            routes: RwLock::new(Arc::new(Table::default())),
            functions: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(HashMap::new()),
            deploying: Mutex::new(()),
            registry,
            modules: ModuleCache::default(),
            backend,
            topics,
            defaults,
            generation: AtomicU64::new(0),
            changed: event_listener::Event::new(),
        }
    }

    /// How many changes there have been; with [`Deployed::changed`], lets a reader wait for
    /// the next without missing one.
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// Fires after every change.
    pub fn changed(&self) -> event_listener::EventListener {
        self.changed.listen()
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
            Ok(table) => self.swap(table, &functions),
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
        let (hash, module) = self.compile(&config, wasm)?;
        let _deploying = lock(&self.deploying);
        let mut functions = lock(&self.functions);
        conflict(&functions, &config)?;
        let (record, created) = self.registry.add_version(config, wasm, hash)?;
        let function = self.serving(record.active(), module);
        let (candidate, table) = self.with(&functions, &function)?;
        self.publish(&mut functions, candidate, table, &function);
        Ok((function, created))
    }

    /// What a deploy checks before anything changes, without changing anything: the
    /// configuration, the module (compiled, and kept compiled while the result is held), and
    /// the routes against the serving functions'. Returns the module's hash and the module.
    pub fn check(
        &self,
        config: &FunctionConfig,
        wasm: &[u8],
    ) -> Result<(String, Arc<Module>), DeployError> {
        let (hash, module) = self.compile(config, wasm)?;
        conflict(&lock(&self.functions), config)?;
        Ok((hash, module))
    }

    /// Validates the configuration and compiles the module under its limits (or finds it
    /// compiled): the module's hash and the module.
    fn compile(
        &self,
        config: &FunctionConfig,
        wasm: &[u8],
    ) -> Result<(String, Arc<Module>), DeployError> {
        config.validate().map_err(DeployError::Config)?;
        let limits = config.limits.apply(&self.defaults);
        // Hashed once, for the module cache and the registry: on a board without SHA
        // instructions a large module takes milliseconds.
        let hash = registry::hash(wasm);
        let module = self
            .modules
            .compile(&hash, wasm, limits)
            .map_err(DeployError::Module)?;
        Ok((hash, module))
    }

    /// What a rollback to `version` of `name` checks, without changing anything: the version is
    /// kept, compiles, and its routes are free. Returns the version.
    pub fn check_rollback(&self, name: &str, version: u32) -> Result<VersionRecord, DeployError> {
        let record = self.registry.get(name)?.ok_or_else(|| not_found(name))?;
        let Some(v) = record.version(version) else {
            let why = format!("function `{name}` has no version {version}");
            return Err(DeployError::NotFound(why));
        };
        self.compile_version(v)?;
        conflict(&lock(&self.functions), &v.config)?;
        Ok(v.clone())
    }

    /// Serves `version`, numbered elsewhere (by a fleet's log), as its function's active
    /// version: a new version, or a kept one again. Its module is `wasm` (whose hash the caller
    /// checked), or stored here already. `mark` is committed with the change. Returns the
    /// function and whether it is new.
    pub fn apply_version(
        &self,
        version: VersionRecord,
        wasm: Option<&[u8]>,
        mark: Mark,
    ) -> Result<(Arc<Function>, bool), DeployError> {
        version.config.validate().map_err(DeployError::Config)?;
        let limits = version.config.limits.apply(&self.defaults);
        let module = match self.modules.get(&version.hash, &limits) {
            Some(module) => module,
            None => {
                let stored;
                let wasm = match wasm {
                    Some(wasm) => wasm,
                    None => {
                        stored = self.registry.module(&version.hash)?;
                        &stored
                    }
                };
                let compiled = self.modules.compile(&version.hash, wasm, limits);
                compiled.map_err(DeployError::Module)?
            }
        };
        let _deploying = lock(&self.deploying);
        let mut functions = lock(&self.functions);
        let function = self.serving(&version, module);
        let (candidate, table) = self.with(&functions, &function)?;
        let (_, created) = self.registry.put_version(version, wasm, Some(mark))?;
        self.publish(&mut functions, candidate, table, &function);
        Ok((function, created))
    }

    /// The bytes of module `hash`, stored here.
    pub fn module_bytes(&self, hash: &str) -> Result<Vec<u8>, RegistryError> {
        self.registry.module(hash)
    }

    /// Whether the module of `hash` is stored here.
    pub fn has_module(&self, hash: &str) -> bool {
        self.registry.has_module(hash)
    }

    /// The note the registry keeps under `key`.
    pub fn mark(&self, key: &str) -> Result<Option<String>, RegistryError> {
        self.registry.mark(key)
    }

    /// Writes a note alone: a fleet's log entry that this device could not apply.
    pub fn set_mark(&self, mark: Mark) -> Result<(), RegistryError> {
        self.registry.set_mark(mark)
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

    /// Sets secret `secret` of function `name` to `value`, durably; the next invocation sees
    /// it.
    pub fn set_secret(&self, name: &str, secret: &str, value: &[u8]) -> Result<(), SecretError> {
        let _deploying = lock(&self.deploying);
        self.registry.set_secret(name, secret, value)?;
        Ok(self.serve_anew(name)?)
    }

    /// Deletes secret `secret` of function `name`, durably; the next invocation is without it.
    pub fn delete_secret(&self, name: &str, secret: &str) -> Result<(), SecretError> {
        let _deploying = lock(&self.deploying);
        self.registry.delete_secret(name, secret)?;
        Ok(self.serve_anew(name)?)
    }

    /// The names of the secrets of `name`, sorted; `None` if there is no such function.
    pub fn secret_names(&self, name: &str) -> Result<Option<Vec<String>>, RegistryError> {
        if self.registry.get(name)?.is_none() {
            return Ok(None);
        }
        let secrets = self.registry.secrets(name);
        Ok(Some(secrets.names().map(str::to_string).collect()))
    }

    /// Serves the serving version of `name` anew, with its secrets as they are now. Callers
    /// hold `deploying`.
    fn serve_anew(&self, name: &str) -> Result<(), RegistryError> {
        let mut functions = lock(&self.functions);
        let Some(current) = functions.get(name) else {
            // Kept, but not served (its module did not compile at start): nothing to rebuild.
            return Ok(());
        };
        let record = self.registry.get(name)?;
        let Some(v) = record.as_ref().and_then(|r| r.version(current.version)) else {
            return Ok(());
        };
        let function = self.serving(v, current.module.clone());
        let (candidate, table) = self
            .with(&functions, &function)
            .expect("INVARIANT: the same version's routes were free");
        *functions = candidate;
        self.swap(table, &functions);
        Ok(())
    }

    /// Stops serving `name` and forgets it.
    pub fn remove(&self, name: &str) -> Result<(), DeployError> {
        match self.remove_with(name, None)? {
            true => Ok(()),
            false => Err(not_found(name)),
        }
    }

    /// [`Deployed::remove`] as a fleet's log asks it: `mark` is committed with the change, and
    /// a function that is not here is no error (false).
    pub fn remove_marked(&self, name: &str, mark: Mark) -> Result<bool, DeployError> {
        self.remove_with(name, Some(mark))
    }

    fn remove_with(&self, name: &str, mark: Option<Mark>) -> Result<bool, DeployError> {
        let _deploying = lock(&self.deploying);
        if !self.registry.remove_marked(name, mark)? {
            return Ok(false);
        }
        let mut functions = lock(&self.functions);
        functions.remove(name);
        let table = self
            .table(&functions)
            .expect("removing a function cannot add a conflict");
        self.swap(table, &functions);
        lock(&self.stats).remove(name);
        drop(functions);
        // Its queues go with it: nothing could deliver them now.
        let gone: Vec<_> = self
            .backend
            .queues()
            .into_iter()
            .filter(|(queue, _)| queue.function == name)
            .map(|(queue, _)| crate::store::queues::QueueOp::Drop { queue })
            .collect();
        self.backend
            .apply(gone)
            .wait()
            .and_then(|()| self.backend.sync().wait())
            .map_err(|e| DeployError::Store(format!("function `{name}` is deleted, but: {e}")))?;
        Ok(true)
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

    /// The route table now.
    pub fn routes(&self) -> Arc<Table> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A namespace of a store, for the operator: `owner` is a function's name, or `None` for
    /// the store's shared namespace.
    pub fn kv_namespace(&self, store: &str, owner: Option<&str>) -> Scoped {
        Scoped::new(self.backend.clone().as_store(), namespace(store, owner))
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
        let store = self.backend.clone().as_store();
        let grants = Grants::new(&store, &config.name, &private, shared);
        let (env, secrets) = environment(&config, &self.registry.secrets(&config.name));
        let admit = (!config.publish.is_empty()).then(|| {
            let allowed = Allowed {
                topics: self.topics.clone(),
                list: config.publish.clone(),
            };
            Arc::new(allowed) as Arc<dyn Admit>
        });
        let stats = self.stats_for(&config.name);
        let outbound = (!config.allowed_hosts.is_empty()).then(|| {
            let outbound = Outbound::new(&config.allowed_hosts, &config.name, stats.clone());
            Arc::new(outbound)
        });
        Arc::new(Function {
            env,
            secrets,
            outbound,
            kv: (!grants.is_empty()).then(|| Arc::new(grants)),
            admit,
            stats,
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
        self.swap(table, functions);
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

    /// Serves `functions` through `table` from now on, with their topics and watches.
    fn swap(&self, table: Table, functions: &BTreeMap<String, Arc<Function>>) {
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.topics.set_subscriptions(
            functions
                .values()
                .flat_map(|f| f.config.topics.iter().map(|s| (f.name(), s.topic.as_str()))),
        );
        self.backend
            .set_watches(watches(functions.values()), self.topics.cap());
        self.generation.fetch_add(1, Relaxed);
        self.changed.notify(usize::MAX);
    }
}

/// The environment `config` and `secrets` make: the configuration's `env` without the names a
/// secret takes, and each secret as `NAME=VALUE`.
fn environment(config: &FunctionConfig, secrets: &Secrets) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = config.env_pairs();
    env.retain(|(name, _)| !secrets.contains(name));
    let vars = secrets.iter().map(|(k, v)| format!("{k}={v}")).collect();
    (env, vars)
}

/// The key-value watches of `functions`, each in the namespace its function sees the store in.
fn watches<'a>(functions: impl Iterator<Item = &'a Arc<Function>>) -> Vec<Watch> {
    let mut list = Vec::new();
    for f in functions {
        let name = f.name();
        for w in &f.config.watch {
            let shared = f.config.shared_stores.contains(&w.store);
            let owner = (!shared).then_some(name);
            let source = Source::Kv {
                store: w.store.clone(),
                prefix: w.prefix.clone(),
            };
            list.push(Watch {
                namespace: namespace(&w.store, owner),
                prefix: w.prefix.clone().into_bytes(),
                queue: QueueKey::new(name, source),
            });
        }
    }
    list
}
