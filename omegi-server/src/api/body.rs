//! Reading OTLP request bodies (HTTP and gRPC): their size, their rate and
//! the memory all bodies in flight may take.
//!
//! A body is read before its request takes an ingest turn
//! ([`super::ingest::take_turn`]), so that a client that sends slowly holds
//! no turn: turns cover only decoding and storing, which do not wait on a
//! client. What bounds the memory of bodies being read is a budget in bytes,
//! one for the server and one per project ([`BodyBudget`]): a body reserves
//! room as its bytes arrive (not as its `Content-Length` announces), so a
//! trickle of bytes holds a trickle of the budget, and one project's uploads
//! cannot take the room of the others. A body that cannot get room within
//! the ingest wait is answered `503` with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::ProjectSlots;

/// How fast a request body must arrive: after `grace`, at least
/// `min_bytes_per_second` on average since the request started (0: no
/// limit). A body that falls behind is answered `408 Request Timeout`, and
/// its room is free again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRate {
    /// Time allowed before the rate counts.
    pub grace: Duration,
    /// The slowest acceptable average rate after the grace period.
    pub min_bytes_per_second: u64,
}

impl Default for BodyRate {
    /// 5 s, then 16 KiB/s.
    fn default() -> Self {
        BodyRate {
            grace: Duration::from_secs(5),
            min_bytes_per_second: 16 * 1024,
        }
    }
}

impl BodyRate {
    /// No rate: a body may take as long as it likes.
    pub(crate) const NONE: BodyRate = BodyRate {
        grace: Duration::ZERO,
        min_bytes_per_second: 0,
    };

    /// When a body of which `received` bytes arrived since `start` must
    /// have its next bytes; `None` without a rate.
    pub(crate) fn deadline(&self, start: Instant, received: usize) -> Option<Instant> {
        if self.min_bytes_per_second == 0 {
            return None;
        }
        let allowed = self.grace
            + Duration::from_secs_f64(received as f64 / self.min_bytes_per_second as f64);
        Some(start + allowed)
    }
}

/// The memory that request bodies being read may take: bytes for the whole
/// server and bytes per project.
#[derive(Debug)]
pub struct BodyBudget {
    server: Arc<Semaphore>,
    server_bytes: usize,
    /// Bytes of each project.
    projects: ProjectSlots,
}

impl BodyBudget {
    /// `server` bytes of bodies at once, `per_project` of them for one
    /// project; neither less than `body_limit` (one body always fits), and a
    /// project's share no more than the server's.
    pub fn new(server: usize, per_project: usize, body_limit: usize) -> Self {
        let server = server.max(body_limit).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            server: Arc::new(Semaphore::new(server)),
            server_bytes: server,
            projects: ProjectSlots::new(per_project.max(body_limit).clamp(1, server)),
        }
    }

    /// Room for a body of `project`, empty until its bytes arrive.
    pub(crate) fn reserve(&self, project: &str) -> Reservation {
        Reservation {
            server: Arc::clone(&self.server),
            project: self.projects.of(project),
            held: None,
            held_bytes: 0,
        }
    }

    /// Bytes reserved by bodies being read now, all projects.
    pub fn in_flight(&self) -> usize {
        self.server_bytes
            .saturating_sub(self.server.available_permits())
    }
}

/// The room one body holds in the [`BodyBudget`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    server: Arc<Semaphore>,
    project: Arc<Semaphore>,
    /// The project's permits and the server's, as many as `held_bytes`.
    held: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    held_bytes: usize,
}

impl Reservation {
    /// Grows the room to `bytes` in all, waiting at most until `deadline`;
    /// `false` when the room did not come in time.
    async fn grow_to(&mut self, bytes: usize, deadline: Instant) -> bool {
        let Some(more) = bytes.checked_sub(self.held_bytes).filter(|&n| n > 0) else {
            return true;
        };
        let Ok(count) = u32::try_from(more) else {
            return false;
        };
        let wait = async {
            let project = Arc::clone(&self.project).acquire_many_owned(count).await;
            let server = Arc::clone(&self.server).acquire_many_owned(count).await;
            project.ok().zip(server.ok())
        };
        let Ok(Some((project, server))) = tokio::time::timeout_at(deadline, wait).await else {
            return false;
        };
        match self.held.as_mut() {
            Some((held_project, held_server)) => {
                held_project.merge(project);
                held_server.merge(server);
            }
            None => self.held = Some((project, server)),
        }
        self.held_bytes = bytes;
        true
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError<E> {
    /// More than the limit arrived.
    TooLarge,
    /// The body fell behind the minimum rate.
    TooSlow { received: usize, elapsed: Duration },
    /// No room in the budget of bodies within the wait.
    Busy,
    /// The connection (or a check of the body as it arrives) failed.
    Read(E),
}

/// The next frame of `body`, of which `received` bytes arrived since
/// `start`, or `Err` when it did not come as fast as `rate` asks.
async fn next_frame<B>(
    body: &mut B,
    rate: BodyRate,
    start: Instant,
    received: usize,
) -> Result<Option<Result<http_body::Frame<Bytes>, B::Error>>, tokio::time::error::Elapsed>
where
    B: Body<Data = Bytes> + Unpin,
{
    match rate.deadline(start, received) {
        Some(deadline) => tokio::time::timeout_at(deadline, body.frame()).await,
        None => Ok(body.frame().await),
    }
}

/// How one body is read: its size limit, its rate, how long it may wait
/// for room, and its first allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadRules {
    /// The most bytes the body may have.
    pub limit: usize,
    /// How fast it must arrive.
    pub rate: BodyRate,
    /// How long it may wait for room in the budget, each time it needs more.
    pub wait: Duration,
}

/// The first room a body takes when its length is not known, and the most
/// it takes ahead of its bytes when it is.
const FIRST_ROOM: usize = 64 * 1024;

/// Reads a whole body within `rules`, its memory reserved in `reservation`
/// as it grows (the buffer's capacity, which at most doubles its length).
/// `expected` is the declared length, trusted only up to a first room of
/// 64 KiB so that announcing a large body reserves nothing.
pub(crate) async fn read_body<B>(
    body: B,
    rules: ReadRules,
    expected: Option<usize>,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, BodyError<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let start = Instant::now();
    let mut body = body;
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        let frame = next_frame(&mut body, rules.rate, start, bytes.len())
            .await
            .map_err(|_| BodyError::TooSlow {
                received: bytes.len(),
                elapsed: start.elapsed(),
            })?;
        let chunk = match frame {
            None => return Ok(bytes),
            Some(Err(error)) => return Err(BodyError::Read(error)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => chunk,
                // Trailers carry nothing OTLP needs.
                Err(_) => continue,
            },
        };
        let needed = bytes.len() + chunk.len();
        if needed > rules.limit {
            return Err(BodyError::TooLarge);
        }
        if needed > bytes.capacity() {
            let first = expected.unwrap_or(0).clamp(needed, FIRST_ROOM.max(needed));
            let room = if bytes.capacity() == 0 {
                first
            } else {
                needed.max(bytes.capacity().saturating_mul(2))
            }
            .min(rules.limit)
            .max(needed);
            if !reservation.grow_to(room, Instant::now() + rules.wait).await {
                return Err(BodyError::Busy);
            }
            bytes.reserve_exact(room - bytes.len());
        }
        bytes.extend_from_slice(&chunk);
    }
}

/// Reads and forgets at most `max` bytes of a body that is refused before it
/// is read, as fast as `rate` asks; stops at the end, past `max` or when the
/// body falls behind. Nothing is kept, so nothing is reserved.
pub(crate) async fn drain<B>(body: B, max: u64, rate: BodyRate)
where
    B: Body<Data = Bytes> + Unpin,
{
    let start = Instant::now();
    let mut body = body;
    let mut seen = 0usize;
    loop {
        let Ok(next) = next_frame(&mut body, rate, start, seen).await else {
            return;
        };
        match next {
            Some(Ok(frame)) => {
                if let Some(chunk) = frame.data_ref() {
                    seen += chunk.len();
                    if seen as u64 > max {
                        return;
                    }
                }
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn rules(limit: usize) -> ReadRules {
        ReadRules {
            limit,
            rate: BodyRate::NONE,
            wait: Duration::from_millis(50),
        }
    }

    /// A body that arrives in the given chunks.
    type Chunks = StreamBody<
        futures_util::stream::Iter<
            std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
        >,
    >;

    fn chunks(parts: Vec<Vec<u8>>) -> Chunks {
        let frames: Vec<_> = parts
            .into_iter()
            .map(|part| Ok(http_body::Frame::data(Bytes::from(part))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_reserves_what_it_holds_and_gives_it_back() {
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1024);
        let mut reservation = budget.reserve("shop");
        let body = chunks(vec![vec![1; 700], vec![2; 700]]);
        let bytes = read_body(body, rules(4096), None, &mut reservation)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 1400);
        let held = budget.in_flight();
        assert!(
            (1400..=2 * 1400 + FIRST_ROOM).contains(&held),
            "holds {held} bytes for a 1,400-byte body"
        );
        drop(reservation);
        assert_eq!(budget.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_declared_length_reserves_nothing_before_the_bytes_come() {
        let budget = BodyBudget::new(8 << 20, 8 << 20, 8 << 20);
        let mut reservation = budget.reserve("shop");
        let body = Full::new(Bytes::from_static(b"tiny"));
        let bytes = read_body(body, rules(8 << 20), Some(8 << 20), &mut reservation)
            .await
            .unwrap();
        assert_eq!(bytes, b"tiny");
        assert!(budget.in_flight() <= FIRST_ROOM);
    }

    #[tokio::test]
    async fn a_full_project_waits_then_is_busy_while_another_project_reads() {
        // The project's share is one body of 1,000 bytes; the server's, two.
        let budget = BodyBudget::new(2000, 1000, 1000);
        let mut first = budget.reserve("shop");
        let held = read_body(chunks(vec![vec![0; 1000]]), rules(1000), None, &mut first)
            .await
            .unwrap();
        assert_eq!(held.len(), 1000);

        let mut second = budget.reserve("shop");
        let refused = read_body(chunks(vec![vec![0; 10]]), rules(1000), None, &mut second).await;
        assert!(matches!(refused, Err(BodyError::Busy)), "{refused:?}");

        let mut other = budget.reserve("billing");
        let read = read_body(chunks(vec![vec![0; 10]]), rules(1000), None, &mut other)
            .await
            .unwrap();
        assert_eq!(read.len(), 10);

        drop(first);
        let mut third = budget.reserve("shop");
        let read = read_body(chunks(vec![vec![0; 10]]), rules(1000), None, &mut third)
            .await
            .unwrap();
        assert_eq!(read.len(), 10);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let budget = BodyBudget::new(1 << 20, 1 << 20, 1 << 20);
        let mut reservation = budget.reserve("shop");
        let body = chunks(vec![vec![0; 600], vec![0; 600]]);
        let refused = read_body(body, rules(1000), None, &mut reservation).await;
        assert!(matches!(refused, Err(BodyError::TooLarge)), "{refused:?}");
    }
}
