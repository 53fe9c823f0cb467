//! A tour of keel-client against a running keel-server:
//! `cargo run -p keel-client --example quickstart -- [resp-port] [grpc-port]`.

use keel_client::grpc::{GrpcClient, GrpcOptions};
use keel_client::{ConnectOptions, Connection, Pool, PoolConfig, Protocol, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv = std::env::args().skip(1);
    let resp_port: u16 = argv.next().map_or(Ok(6379), |p| p.parse())?;
    let grpc_port: u16 = argv.next().map_or(Ok(7379), |p| p.parse())?;

    // One RESP3 connection: typed replies.
    let mut opts = ConnectOptions::new("127.0.0.1", resp_port);
    opts.protocol = Protocol::Resp3;
    let mut conn = Connection::connect(&opts).await?;
    conn.query(&["HSET", "example:user", "name", "ada", "lang", "rust"])
        .await?;
    if let Value::Map(fields) = conn.query(&["HGETALL", "example:user"]).await? {
        for (k, v) in fields {
            println!(
                "{} = {}",
                k.as_text().unwrap_or_default(),
                v.as_text().unwrap_or_default()
            );
        }
    }

    // A pool shared by tasks; reads are retried on a dropped connection, writes never.
    let pool = Pool::new(
        ConnectOptions::new("127.0.0.1", resp_port),
        PoolConfig::default(),
    );
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            p.command(&["INCR", "example:hits"]).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "hits = {:?}",
        pool.command(&["GET", "example:hits"]).await?.as_int()
    );

    // gRPC: atomic multi-key writes and a transaction.
    let kv = GrpcClient::connect(GrpcOptions::new("127.0.0.1", grpc_port)).await?;
    kv.set(0, vec![(b"example:a".to_vec(), b"1".to_vec())], None)
        .await?;
    let mut txn = kv.begin(0).await?;
    txn.put(vec![(b"example:b".to_vec(), b"2".to_vec())])
        .await?;
    println!("committed {} key(s)", txn.commit().await?);
    Ok(())
}
