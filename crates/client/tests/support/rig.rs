//! A real API server (`jobcenter-server` over the real engine on a `MemoryStore`) on a
//! loopback port, with the example workflows and the reference users.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jobcenter::{Client, ClientConfig, Worker};
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig, ServerHandle, Timers};

pub const SOURCES: &[(&str, &str)] = &[
    (
        "add.ac",
        "action add:\nin:\n    counter number\n    step number 1\nout:\n    counter number\n",
    ),
    (
        "calladd.wf",
        "workflow calladd:\nin:\n    input number\nout:\n    output number\nwfomap:\n    output = v.thing\ndo:\n    call add:\n        counter = a.input\n    into:\n        thing = o.counter\n",
    ),
    (
        "square.ac",
        "action square:\nin:\n    root number\nout:\n    square number\n",
    ),
    (
        "callsquare.wf",
        "workflow callsquare:\nin:\n    root number\nout:\n    square number\nwfomap:\n    square = v.square\ndo:\n    call square:\n        root = a.root\n    into:\n        square = o.square\n",
    ),
    (
        "div.ac",
        "action div:\nin:\n    dividend number\n    divisor number\nout:\n    quotient number\n",
    ),
    (
        "calldiv.wf",
        "workflow calldiv:\nin:\n    dividend number\n    divisor number\nout:\n    quotient number\nwfomap:\n    quotient = v.quotient\ndo:\n    call div:\n        dividend = a.dividend\n        divisor = a.divisor\n    into:\n        quotient = o.quotient\n",
    ),
    (
        "sleeper.wf",
        "workflow sleeper:\nin:\n    d string\nout:\n    r string\nwfomap:\n    r = v.r\ndo:\n    sleep a.d\n    let:\n        r = 'woke up'\n",
    ),
];

pub const PASSWD: &str = "theCustomer:$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB\n\
theEmployee:$5$OHFG1Ol7VMz647y$gmqS.M6i0hTtcKu9935yBn8Ck7yOdonV68hkz7mjnS/\n";

pub struct Rig {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine<jobcenter_store::MemoryStore>>,
}

pub fn engine() -> Arc<Engine<jobcenter_store::MemoryStore>> {
    let mut cat = Catalog::with_stage(Stage::C);
    for (file, src) in SOURCES {
        if let Err(e) = cat.compile(file, src) {
            panic!("{file} does not compile: {e:?}");
        }
    }
    Engine::new(
        cat,
        jobcenter_store::MemoryStore::new(),
        EngineConfig::default(),
    )
    .start()
}

pub async fn start(
    addr: SocketAddr,
    dir: &tempfile::TempDir,
    engine: Arc<Engine<jobcenter_store::MemoryStore>>,
) -> ServerHandle {
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, PASSWD).unwrap();
    let config = ServerConfig {
        listeners: vec![ListenerConfig::tcp(addr)],
        auth: AuthConfig {
            password_file: Some(pw),
            clientcert_file: None,
            dev_allow_any: false,
            ..AuthConfig::default()
        },
        timers: Timers::default(),
        limits: Default::default(),
        http: None,
        admin: ServerConfig::DEFAULT_ADMIN.into(),
    };
    Server::start(config, engine).await.expect("server starts")
}

pub async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let handle = start("127.0.0.1:0".parse().unwrap(), &dir, engine.clone()).await;
    let addr = handle.local_addrs()[0];
    Rig {
        handle: Some(handle),
        addr,
        dir,
        engine,
    }
}

impl Rig {
    pub fn cfg(&self, who: &str, token: &str) -> ClientConfig {
        ClientConfig::new(who, token)
            .address(self.addr.ip().to_string())
            .port(self.addr.port())
            .timeout(Duration::from_secs(5))
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.cfg("theCustomer", "wantsThings"))
            .await
            .unwrap()
    }

    pub async fn worker(&self) -> Worker {
        Worker::connect(self.cfg("theEmployee", "doesThings"))
            .await
            .unwrap()
    }
}
