//! The three services of the demo shop, each run as its own process:
//! user-service → inventory-service → payment-service.
//!
//! Each is an axum server set up with the one-line Omegi layer (OTLP to the
//! collector) and calls the next service with reqwest.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use omegi_layer::propagation::{RequestBuilderExt, ServerTraceLayer};
use omegi_layer::sink::OtlpSink;
use serde::{Deserialize, Serialize};
use tracing_subscriber::prelude::*;

/// An order as the shop's front end sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Order number.
    pub id: u64,
    /// Stock keeping unit.
    pub sku: String,
    /// Amount in cents.
    pub amount: u64,
    /// ISO currency code.
    pub currency: String,
}

#[derive(Clone)]
struct Next {
    client: reqwest::Client,
    url: Option<String>,
}

/// Runs one service until its standard input closes.
pub fn run(name: &str, collector: &str, token: &str, next: Option<String>) -> anyhow::Result<()> {
    let sink = OtlpSink::builder()
        .endpoint(collector)
        .bearer_token(token)
        .build()?;
    let (omegi, guard) = omegi_layer::layer(name)
        .with_sink(sink)
        .with_panic_hook()
        .export_interval(Duration::from_millis(200))
        .build();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(omegi)
        .init();

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let next = Next {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            url: next,
        };
        let app = match name {
            "user-service" => Router::new().route("/checkout", post(checkout)),
            "inventory-service" => Router::new().route("/reserve", post(reserve)),
            "payment-service" => Router::new().route("/charge", post(charge)),
            other => anyhow::bail!("unknown service {other}"),
        }
        .with_state(next)
        .layer(ServerTraceLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        // The orchestrator reads this line to learn the address.
        println!("listening on {addr}");
        // Stop when the orchestrator closes our standard input.
        let stop = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await;
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await?;
        anyhow::Ok(())
    })?;
    drop(runtime);
    // Dropping the guard sends what is still queued to the collector.
    drop(guard);
    Ok(())
}

/// user-service: accepts the checkout and asks inventory to reserve stock.
#[tracing::instrument(skip_all, fields(order.id = order.id))]
async fn checkout(State(next): State<Next>, Json(order): Json<Order>) -> StatusCode {
    tracing::info!(sku = %order.sku, amount = order.amount, "checkout started");
    let url = format!("{}/reserve", next.url.as_deref().unwrap_or_default());
    match next.client.post(url).json(&order).send_traced().await {
        Ok(r) if r.status().is_success() => {
            tracing::info!("order confirmed");
            StatusCode::OK
        }
        Ok(r) => {
            tracing::warn!(status = r.status().as_u16(), "inventory refused the order");
            StatusCode::BAD_GATEWAY
        }
        Err(e) => {
            tracing::error!(error = &e as &dyn StdError, "inventory-service unreachable");
            StatusCode::BAD_GATEWAY
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("warehouse database did not answer within {0:?}")]
struct WarehouseTimeout(Duration, #[source] tokio::time::error::Elapsed);

/// Looks the SKU up in the (simulated) warehouse database.
#[tracing::instrument]
async fn lookup_stock(sku: &str) -> Result<u32, WarehouseTimeout> {
    let limit = Duration::from_millis(80);
    let slow = sku == "sku-slow";
    tokio::time::timeout(limit, async {
        tokio::time::sleep(Duration::from_millis(if slow { 250 } else { 2 })).await;
        12
    })
    .await
    .map_err(|e| WarehouseTimeout(limit, e))
}

/// inventory-service: checks stock, then asks payment to charge.
#[tracing::instrument(skip_all, fields(order.id = order.id, sku = %order.sku))]
async fn reserve(State(next): State<Next>, Json(order): Json<Order>) -> StatusCode {
    tracing::info!("checking stock");
    let stock = match lookup_stock(&order.sku).await {
        Ok(stock) => stock,
        Err(e) => {
            tracing::error!(error = &e as &dyn StdError, "stock lookup failed");
            return StatusCode::GATEWAY_TIMEOUT;
        }
    };
    tracing::info!(stock, "stock reserved");
    let url = format!("{}/charge", next.url.as_deref().unwrap_or_default());
    match next.client.post(url).json(&order).send_traced().await {
        Ok(r) if r.status().is_success() => StatusCode::OK,
        Ok(r) => {
            tracing::warn!(
                status = r.status().as_u16(),
                "payment refused, releasing stock"
            );
            StatusCode::BAD_GATEWAY
        }
        Err(e) => {
            tracing::error!(error = &e as &dyn StdError, "payment-service call failed");
            StatusCode::BAD_GATEWAY
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("issuer answered: insufficient funds on card ending {0}")]
struct IssuerRefusal(u64);

#[derive(Debug, thiserror::Error)]
enum PaymentError {
    #[error("payment declined for order {order}")]
    Declined {
        order: u64,
        #[source]
        source: IssuerRefusal,
    },
}

/// Exchange rates the payment service knows.
fn rate(currency: &str) -> Option<f64> {
    match currency {
        "EUR" => Some(1.0),
        "USD" => Some(0.92),
        _ => None,
    }
}

/// Authorizes the card with the (simulated) issuer.
#[tracing::instrument(skip_all, fields(order.id = order.id, amount = order.amount))]
async fn authorize(order: &Order) -> Result<(), PaymentError> {
    tracing::info!("contacting card issuer");
    tokio::time::sleep(Duration::from_millis(3)).await;
    if order.id.is_multiple_of(7) {
        return Err(PaymentError::Declined {
            order: order.id,
            source: IssuerRefusal(4242),
        });
    }
    Ok(())
}

/// payment-service: converts the amount and charges the card.
#[tracing::instrument(skip_all, fields(order.id = order.id, currency = %order.currency))]
async fn charge(Json(order): Json<Order>) -> StatusCode {
    tracing::info!("charging card");
    // A bug: an unknown currency panics instead of being refused.
    let eur = order.amount as f64 * rate(&order.currency).expect("exchange rate for currency");
    tracing::info!(eur, "amount converted");
    match authorize(&order).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::error!(
                error = &e as &dyn StdError,
                error.type = "PaymentError::Declined",
                "card payment failed"
            );
            StatusCode::PAYMENT_REQUIRED
        }
    }
}
