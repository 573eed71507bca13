//! The floor of `make bench`: ONNX Runtime through the `ort` crate with no
//! library around it, run on exactly each sentence's real-token length.
//!
//! ```text
//! bare_ort ORT_LIBRARY MODEL TOKENS_TXT OUT_JSON
//! ```
//!
//! What a straightforward host does: one session per thread count, configured
//! as the library configures its own (all graph optimisations, 1 or 2 intra-op
//! threads); input tensors created once per run shape and refilled on each
//! call; the output allocated by ONNX Runtime on each run; then mean pooling
//! and L2 normalisation. Same sentences, cycles, warm-up, statistics and record
//! fields as `bench/embed_bench.c` (see there); `BENCH_CALLS` as there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ort::environment::Environment;
use ort::memory::Allocator;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// Counts the Rust side's allocations, as the library's `alloc-counter` build does.
struct CountingAllocator;

static RUST_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` unchanged; counting touches no memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        RUST_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        RUST_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        RUST_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// `alloc_counter_count` of bench/alloc_counter.c, when it is LD_PRELOADed.
fn process_counter() -> Option<extern "C" fn() -> u64> {
    // SAFETY: dlsym only reads the loader's tables; the name is NUL-terminated.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"alloc_counter_count".as_ptr()) };
    if symbol.is_null() {
        return None;
    }
    // SAFETY: the preloaded counter defines `uint64_t alloc_counter_count(void)`.
    Some(unsafe { std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> u64>(symbol) })
}

struct Sentence {
    class: String,
    real_len: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
    types: Vec<i64>,
}

/// Reads the file of bench/tokenize_sentences.py.
fn read_sentences(path: &str) -> BoxResult<Vec<Sentence>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty tokens file")?
        .split(' ')
        .collect();
    let seq_len: usize = header.get(1).ok_or("bad header")?.parse()?;
    let mut sentences = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let mut fields = line.split(' ');
        let class = fields.next().ok_or("bad line")?.to_owned();
        let real_len = fields.next().ok_or("bad line")?.parse()?;
        let values = fields.map(str::parse).collect::<Result<Vec<i64>, _>>()?;
        if values.len() != 3 * seq_len {
            return Err(format!("a line of {path} has {} values", values.len()).into());
        }
        sentences.push(Sentence {
            class,
            real_len,
            ids: values[..seq_len].to_vec(),
            mask: values[seq_len..2 * seq_len].to_vec(),
            types: values[2 * seq_len..].to_vec(),
        });
    }
    Ok(sentences)
}

/// The distinct runs of one scenario, cycled: run k, row r is sentence
/// `selected[(k * rows + r) % n]` (the rule of embed_bench.c).
fn make_runs<'a>(
    sentences: &'a [Sentence],
    class: Option<&str>,
    rows: usize,
) -> Vec<Vec<&'a Sentence>> {
    let selected: Vec<&Sentence> = sentences
        .iter()
        .filter(|s| class.is_none_or(|c| s.class == c))
        .collect();
    let n = selected.len();
    let distinct = n / gcd(n, rows);
    (0..distinct)
        .map(|k| (0..rows).map(|r| selected[(k * rows + r) % n]).collect())
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The input tensors of one run shape, refilled on each call.
struct ShapedInputs {
    ids: Tensor<i64>,
    mask: Tensor<i64>,
    types: Tensor<i64>,
}

impl ShapedInputs {
    fn new(rows: usize, len: usize) -> ort::Result<Self> {
        let allocator = Allocator::default();
        Ok(Self {
            ids: Tensor::new(&allocator, [rows, len])?,
            mask: Tensor::new(&allocator, [rows, len])?,
            types: Tensor::new(&allocator, [rows, len])?,
        })
    }
}

struct Runner {
    session: Session,
    /// For each model input in model order: 0 ids, 1 mask, 2 types.
    order: [usize; 3],
    shapes: HashMap<(usize, usize), ShapedInputs>,
    out: Vec<f32>,
}

const OUT_DIM: usize = 384;

impl Runner {
    fn new(environment: &Environment, model: &str, threads: usize) -> BoxResult<Self> {
        let session = Session::builder(environment)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            .with_intra_threads(threads)?
            .commit_from_file(model)?;
        let mut order = [0; 3];
        for (slot, input) in order.iter_mut().zip(session.inputs()) {
            *slot = match input.name() {
                "input_ids" => 0,
                "attention_mask" => 1,
                "token_type_ids" => 2,
                other => return Err(format!("unexpected model input {other}").into()),
            };
        }
        Ok(Self {
            session,
            order,
            shapes: HashMap::new(),
            out: vec![0.0; 32 * OUT_DIM],
        })
    }

    /// Embeds `rows` in one run on their longest real length.
    fn embed(&mut self, rows: &[&Sentence]) -> BoxResult<()> {
        let len = rows.iter().map(|s| s.real_len).max().unwrap_or(1).max(1);
        let key = (rows.len(), len);
        let inputs = match self.shapes.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(ShapedInputs::new(rows.len(), len)?),
        };
        fill(&mut inputs.ids, rows, len, |s| &s.ids);
        fill(&mut inputs.mask, rows, len, |s| &s.mask);
        fill(&mut inputs.types, rows, len, |s| &s.types);
        let by_kind = [&inputs.ids, &inputs.mask, &inputs.types];
        let [a, b, c] = self.order.map(|kind| by_kind[kind]);
        let outputs = self.session.run(ort::inputs![a, b, c])?;
        let (shape, hidden_states) = outputs[0].try_extract_tensor::<f32>()?;
        let hidden = usize::try_from(shape[2])?;
        for ((row, states), out) in rows
            .iter()
            .zip(hidden_states.chunks_exact(len * hidden))
            .zip(self.out.chunks_exact_mut(OUT_DIM))
        {
            mean_pool_and_normalize(states, &row.mask[..len], hidden, out);
        }
        Ok(())
    }
}

fn fill(tensor: &mut Tensor<i64>, rows: &[&Sentence], len: usize, values: fn(&Sentence) -> &[i64]) {
    let (_, data) = tensor.extract_tensor_mut();
    for (row, dst) in rows.iter().zip(data.chunks_exact_mut(len)) {
        dst.copy_from_slice(&values(row)[..len]);
    }
}

/// Mean over the valid tokens, then L2 normalisation (as the contract computes).
fn mean_pool_and_normalize(states: &[f32], mask: &[i64], hidden: usize, out: &mut [f32]) {
    out.fill(0.0);
    let mut valid = 0usize;
    for (token, &m) in states.chunks_exact(hidden).zip(mask) {
        if m > 0 {
            valid += 1;
            out.iter_mut().zip(token).for_each(|(o, &v)| *o += v);
        }
    }
    let scale = 1.0 / valid.max(1) as f32;
    out.iter_mut().for_each(|v| *v *= scale);
    let norm_sq: f64 = out.iter().map(|&v| f64::from(v).powi(2)).sum();
    if norm_sq > 1e-12 {
        let factor = (1.0 / norm_sq.sqrt()) as f32;
        out.iter_mut().for_each(|v| *v *= factor);
    }
}

struct Record {
    scenario: &'static str,
    sentences: &'static str,
    threads: usize,
    batch: usize,
    embeds: usize,
    median_ms: f64,
    p99_ms: f64,
    embeds_per_s: f64,
    process_allocs: Option<f64>,
    rust_allocs: f64,
}

/// Percentile with linear interpolation between ranks (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Two warm-up cycles, then at least `embeds` timed embeds in whole cycles.
fn measure(
    runner: &mut Runner,
    runs: &[Vec<&Sentence>],
    embeds: usize,
    counter: Option<extern "C" fn() -> u64>,
) -> BoxResult<(Vec<f64>, f64, Option<u64>, u64)> {
    let rows = runs[0].len();
    let timed = embeds.div_ceil(rows).div_ceil(runs.len()) * runs.len();
    for i in 0..2 * runs.len() {
        runner.embed(&runs[i % runs.len()])?;
    }
    let mut latencies = Vec::with_capacity(timed);
    let (process_before, rust_before) = (
        counter.map(|f| f()),
        RUST_ALLOCATIONS.load(Ordering::Relaxed),
    );
    let start = Instant::now();
    for i in 0..timed {
        let call = Instant::now();
        runner.embed(&runs[i % runs.len()])?;
        latencies.push(call.elapsed().as_secs_f64() * 1e3 / rows as f64);
    }
    let wall = start.elapsed().as_secs_f64();
    let process = counter.map(|f| f()).zip(process_before).map(|(a, b)| a - b);
    let rust = RUST_ALLOCATIONS.load(Ordering::Relaxed) - rust_before;
    Ok((latencies, wall, process, rust))
}

fn env_count(name: &str, default: usize) -> BoxResult<usize> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value.parse()?),
        _ => Ok(default),
    }
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, ort_library, model, tokens, out_json] = &args[..] else {
        return Err("usage: bare_ort ORT_LIBRARY MODEL TOKENS_TXT OUT_JSON".into());
    };
    let calls = env_count("BENCH_CALLS", 240)?;
    let counter = process_counter();
    let sentences = read_sentences(tokens)?;
    let environment = ort::init_from(ort_library)?
        .with_name("bare_ort")
        .with_telemetry(false)
        .build()?;
    println!(
        "bare ONNX Runtime, {} sentences, process counter {}",
        sentences.len(),
        if counter.is_some() { "on" } else { "n/a" }
    );
    let mut records = Vec::new();
    for threads in [1, 2] {
        let mut runner = Runner::new(&environment, model, threads)?;
        let mut scenarios: Vec<(&str, Option<&str>, usize)> = vec![("mix", None, 1)];
        if threads == 1 {
            for class in ["short", "medium", "long"] {
                scenarios.push((class, Some(class), 1));
            }
        }
        scenarios.extend([("batch8", None, 8), ("batch32", None, 32)]);
        for (scenario, class, rows) in scenarios {
            let runs = make_runs(&sentences, class, rows);
            let (mut latencies, wall, process, rust) = measure(&mut runner, &runs, calls, counter)?;
            latencies.sort_by(f64::total_cmp);
            let embeds = latencies.len() * rows;
            let record = Record {
                scenario,
                sentences: class.unwrap_or("mix"),
                threads,
                batch: rows,
                embeds,
                median_ms: percentile(&latencies, 0.5),
                p99_ms: percentile(&latencies, 0.99),
                embeds_per_s: embeds as f64 / wall,
                process_allocs: process.map(|p| p as f64 / embeds as f64),
                rust_allocs: rust as f64 / embeds as f64,
            };
            println!(
                "  {:<10} {:<7} t{} b{:<2} {:>6} embeds  median {:>8.3} ms  p99 {:>8.3} ms  {:>8.1} embeds/s  allocs/embed process {} rust {:.2}",
                record.scenario,
                record.sentences,
                threads,
                rows,
                embeds,
                record.median_ms,
                record.p99_ms,
                record.embeds_per_s,
                record.process_allocs.map_or("n/a".into(), |p| format!("{p:.2}")),
                record.rust_allocs,
            );
            records.push(record);
        }
    }
    std::fs::write(out_json, to_json(&records, counter.is_some()))?;
    println!("wrote {out_json}");
    Ok(())
}

fn to_json(records: &[Record], process_counter: bool) -> String {
    let mut json = format!(
        "{{\n  \"source\": \"bare\",\n  \"meta\": {{\"process_counter\": {process_counter}, \"rust_counter\": true}},\n  \"records\": [\n"
    );
    for (i, r) in records.iter().enumerate() {
        let process = r
            .process_allocs
            .map_or("null".into(), |p| format!("{p:.4}"));
        let _ = writeln!(
            json,
            "    {{\"scenario\": \"{}\", \"sentences\": \"{}\", \"positions\": \"trimmed\", \"threads\": {}, \"batch\": {}, \"callers\": 1, \"embeds\": {}, \"median_ms\": {:.4}, \"p99_ms\": {:.4}, \"embeds_per_s\": {:.3}, \"process_allocs_per_embed\": {process}, \"rust_allocs_per_embed\": {:.4}, \"rss_before_kib\": null, \"rss_after_kib\": null}}{}",
            r.scenario,
            r.sentences,
            r.threads,
            r.batch,
            r.embeds,
            r.median_ms,
            r.p99_ms,
            r.embeds_per_s,
            r.rust_allocs,
            if i + 1 < records.len() { "," } else { "" },
        );
    }
    json.push_str("  ]\n}\n");
    json
}
