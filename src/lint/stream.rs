//! The `lint` command's engine: reads the inputs piece by piece (one document each, see
//! [`super::split`]), lints and renders the pieces in parallel, and writes them in the input's
//! order, so the report is the same whatever the number of threads, and memory follows the
//! largest document rather than the input.
//!
//! The work goes out as jobs numbered in the input's order: a few small files each (the worker
//! reads them), or a batch of pieces of a large file or stdin (split under the jobs' lock, the
//! only serial reading). Workers take the next job as soon as they are free, with no barrier
//! between batches; the calling thread only writes the rendered bytes in order. At most
//! [`JOBS_AHEAD`] jobs per thread are handed out and not yet written, which bounds memory.
//!
//! The reports are byte for byte those [`super::render`] makes of the whole run. Text goes out as
//! each document is done; a file's skipped documents follow its DaemonSets, so they wait for the
//! end of the file. JSON and SARIF name the input errors before the files, so their bodies are
//! rendered as the pieces are done into a buffer that moves to an unnamed temporary file past a
//! few MiB, and leave after the errors once the run is over.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};

use serde::Serialize;

use super::remote::Remote;
use super::report::{
    lint_chunk, report, ChunkLinted, ErrorKind, InputError, LintOptions, Report, Summary,
};
use super::split::{Chunk, Splitter};
use super::text::{self, Style};
use super::{decode, fixed_manifests, rule_docs, sarif, Format, LintQuery, RuleDoc};

/// Where an input comes from.
pub(crate) enum Source {
    Stdin,
    File(PathBuf),
    /// It could not be found or listed.
    Failed(InputError),
}

/// One input to lint.
pub(crate) struct Input {
    /// The path as given (or found under a directory), `-` for stdin.
    pub name: String,
    pub source: Source,
}

/// How to lint and report.
pub(crate) struct Settings<'a> {
    pub opts: LintOptions<'a>,
    pub format: Format,
    pub style: Style,
    /// Print the manifests with the mutation applied.
    pub fix: bool,
    /// Threads (1: no pool at all).
    pub jobs: usize,
}

/// The most input bytes, pieces and files in one job: enough that handing out a job and writing
/// its result cost little beside linting it, little enough to keep memory near the largest
/// document.
const BATCH_BYTES: usize = 64 << 10;
const BATCH_PIECES: usize = 64;
const BATCH_FILES: usize = 16;
/// Files up to this size are read whole by their worker; larger ones are split by the jobs.
const WHOLE_FILE: u64 = 64 << 10;
/// Jobs per thread handed out and not yet written.
const JOBS_AHEAD: usize = 4;
/// Rendered output kept in memory before it moves to a temporary file.
const SPILL_AT: usize = 1 << 20;

fn io_error(name: &str, e: &io::Error) -> InputError {
    InputError::new(name, ErrorKind::Io, format!("cannot read: {e}"))
}

/// A reader the jobs can hand between threads.
type Reader = Box<dyn BufRead + Send>;

fn open(input: &Input) -> Result<Reader, Box<InputError>> {
    match &input.source {
        Source::Stdin => Ok(Box::new(BufReader::with_capacity(128 << 10, io::stdin()))),
        Source::File(path) => File::open(path)
            .map(|f| Box::new(BufReader::with_capacity(128 << 10, f)) as Reader)
            .map_err(|e| Box::new(io_error(&input.name, &e))),
        Source::Failed(e) => Err(Box::new(e.clone())),
    }
}

/// What a piece renders to.
#[derive(Default)]
struct Rendered {
    /// In the report's main flow: DaemonSets (text, JSON) or results (SARIF).
    objects: Vec<String>,
    /// After the file's DaemonSets.
    skipped: Vec<String>,
    counts: Summary,
    errors: Vec<InputError>,
    stop: bool,
    fixed: Option<String>,
}

/// `value` pretty-printed as serde_json prints it `indent` spaces deep in a larger document.
fn nested(value: &impl Serialize, indent: usize) -> String {
    let text = serde_json::to_value(value)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default();
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&pad);
        out.push_str(line);
    }
    out
}

struct Renderer<'a> {
    format: Format,
    style: Style,
    rules: &'a [RuleDoc],
}

impl Renderer<'_> {
    fn render(&self, source: &str, c: ChunkLinted) -> Rendered {
        let mut r = Rendered {
            errors: c.errors,
            stop: c.stop,
            fixed: c.fixed,
            ..Rendered::default()
        };
        r.counts.skipped = c.skipped.len();
        for o in &c.objects {
            r.counts.count(o);
            match self.format {
                Format::Text => {
                    let mut s = String::new();
                    text::object(&mut s, source, o, self.style);
                    r.objects.push(s);
                }
                // files[i].objects[j]
                Format::Json => r.objects.push(nested(o, 8)),
                // runs[0].results[k]
                Format::Sarif => r.objects.extend(
                    sarif::results(source, o, self.rules)
                        .iter()
                        .map(|v| nested(v, 8)),
                ),
            }
        }
        for k in &c.skipped {
            match self.format {
                Format::Text => {
                    let mut s = String::new();
                    text::skipped(&mut s, source, k, self.style);
                    r.skipped.push(s);
                }
                Format::Json => r.skipped.push(nested(k, 8)),
                Format::Sarif => {}
            }
        }
        r
    }
}

/// Bytes kept in memory up to [`SPILL_AT`], then in an unnamed temporary file.
struct Spill {
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    empty: bool,
    limit: usize,
}

impl Default for Spill {
    fn default() -> Self {
        Spill {
            mem: Vec::new(),
            file: None,
            empty: true,
            limit: SPILL_AT,
        }
    }
}

impl Spill {
    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.empty = false;
        if let Some(f) = &mut self.file {
            return f.write_all(b);
        }
        if self.mem.len() + b.len() <= self.limit {
            self.mem.extend_from_slice(b);
            return Ok(());
        }
        let mut f = BufWriter::with_capacity(64 << 10, tempfile::tempfile()?);
        f.write_all(&self.mem)?;
        f.write_all(b)?;
        self.mem = Vec::new();
        self.file = Some(f);
        Ok(())
    }

    /// Writes everything to `out` and empties the buffer.
    fn drain(&mut self, out: &mut dyn Write) -> io::Result<()> {
        match self.file.take() {
            None => out.write_all(&self.mem)?,
            Some(f) => {
                let mut f = f.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                io::copy(&mut f, out)?;
            }
        }
        self.mem.clear();
        self.empty = true;
        Ok(())
    }
}

/// Writes the pieces in order.
struct Sink<'w, 'o> {
    format: Format,
    style: Style,
    opts: LintOptions<'o>,
    out: &'w mut dyn Write,
    fixed_out: Option<&'w mut dyn Write>,
    /// JSON: the files; SARIF: the results.
    body: Spill,
    /// The current file's skipped documents.
    later: Spill,
    summary: Summary,
    errors: Vec<InputError>,
    /// The current file.
    source: String,
    objects: usize,
    skipped: usize,
    /// SARIF results so far.
    results: usize,
    /// The current file stopped at an unreadable document.
    stopped: bool,
}

impl Sink<'_, '_> {
    fn begin(&mut self, source: &str) -> io::Result<()> {
        self.summary.files += 1;
        self.source = source.to_string();
        self.objects = 0;
        self.skipped = 0;
        self.stopped = false;
        if self.format == Format::Json {
            let sep = if self.summary.files > 1 { ",\n" } else { "" };
            self.body
                .write(format!("{sep}    {{\n      \"objects\": [").as_bytes())?;
        }
        if let Some(f) = &mut self.fixed_out {
            f.write_all(format!("# Source: {source}\n").as_bytes())?;
        }
        Ok(())
    }

    fn piece(&mut self, r: Rendered) -> io::Result<()> {
        if self.stopped {
            return Ok(());
        }
        for o in &r.objects {
            match self.format {
                Format::Text => self.out.write_all(o.as_bytes())?,
                Format::Json => {
                    let sep = if self.objects == 0 { "\n" } else { ",\n" };
                    self.body.write(sep.as_bytes())?;
                    self.body.write(o.as_bytes())?;
                }
                Format::Sarif => {
                    if self.results > 0 {
                        self.body.write(b",\n")?;
                    }
                    self.body.write(o.as_bytes())?;
                    self.results += 1;
                }
            }
            self.objects += 1;
        }
        for k in &r.skipped {
            if self.format == Format::Json {
                let sep = if self.skipped == 0 { "\n" } else { ",\n" };
                self.later.write(sep.as_bytes())?;
            }
            self.later.write(k.as_bytes())?;
            self.skipped += 1;
        }
        self.summary.add(&r.counts);
        for e in r.errors {
            self.error(e)?;
        }
        if let (Some(f), Some(fixed)) = (&mut self.fixed_out, &r.fixed) {
            f.write_all(fixed.as_bytes())?;
        }
        self.stopped = r.stop;
        Ok(())
    }

    fn error(&mut self, e: InputError) -> io::Result<()> {
        if self.format == Format::Text {
            let mut s = String::new();
            text::error(&mut s, &e, self.style);
            self.out.write_all(s.as_bytes())?;
        }
        self.summary.errors += 1;
        self.errors.push(e);
        Ok(())
    }

    fn end(&mut self) -> io::Result<()> {
        match self.format {
            Format::Text => self.later.drain(self.out)?,
            Format::Json => {
                let close = |n: usize| if n > 0 { "\n      ]" } else { "]" };
                self.body.write(close(self.objects).as_bytes())?;
                self.body.write(b",\n      \"skipped\": [")?;
                if !self.later.empty {
                    let mut later = std::mem::take(&mut self.later);
                    later.drain(&mut SpillWriter(&mut self.body))?;
                }
                self.body.write(close(self.skipped).as_bytes())?;
                let source = serde_json::to_string(&self.source).unwrap_or_default();
                self.body
                    .write(format!(",\n      \"source\": {source}\n    }}").as_bytes())?;
            }
            Format::Sarif => {}
        }
        self.later = Spill::default();
        Ok(())
    }

    /// Writes what waited for the end of the run, and returns the run's report (without files).
    fn finish(mut self, rules: &[RuleDoc]) -> io::Result<Report> {
        let errors = std::mem::take(&mut self.errors);
        let mut done = report(Vec::new(), errors, &self.opts);
        done.summary = self.summary.clone();
        let (rendered, marker, indent) = match self.format {
            Format::Text => {
                let mut s = String::new();
                text::summary(&mut s, &done.summary, self.style);
                self.out.write_all(s.as_bytes())?;
                self.out.flush()?;
                return Ok(done);
            }
            Format::Json => (
                serde_json::to_value(&done).unwrap_or_default(),
                "\n  \"files\": []",
                "  ",
            ),
            Format::Sarif => (
                sarif::render(&done, rules),
                "\n      \"results\": []",
                "      ",
            ),
        };
        let mut skeleton = serde_json::to_string_pretty(&rendered).unwrap_or_default();
        skeleton.push('\n');
        // Object keys are sorted and strings cannot hold a line break: the marker is unique.
        let Some(at) = skeleton.find(marker).map(|i| i + marker.len() - 2) else {
            self.out.write_all(skeleton.as_bytes())?;
            return Ok(done);
        };
        self.out.write_all(&skeleton.as_bytes()[..at])?;
        if self.body.empty {
            self.out.write_all(b"[]")?;
        } else {
            self.out.write_all(b"[\n")?;
            self.body.drain(self.out)?;
            self.out.write_all(format!("\n{indent}]").as_bytes())?;
        }
        self.out.write_all(&skeleton.as_bytes()[at + 2..])?;
        self.out.flush()?;
        Ok(done)
    }
}

/// A [`Spill`] as a writer.
struct SpillWriter<'s>(&'s mut Spill);

impl Write for SpillWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One step of a job, in the input's order.
enum Step<'i> {
    Begin(usize),
    Piece(usize, Chunk),
    /// A small file: the worker reads, splits, lints and renders it whole.
    Whole(usize, &'i Path),
    Error(InputError),
    End,
}

enum Done {
    Begin(usize),
    Piece(Rendered),
    Error(InputError),
    End,
}

/// Hands out the work in the input's order.
struct Jobs<'i> {
    inputs: &'i [Input],
    next_input: usize,
    /// The large input being split.
    current: Option<(usize, Splitter<Reader>)>,
    /// An input whose lint stopped at an unreadable document: read no further.
    stopped: Option<usize>,
}

impl<'i> Jobs<'i> {
    /// The next job, `None` once every input is handed out.
    fn next(&mut self) -> Option<Vec<Step<'i>>> {
        let mut steps = Vec::new();
        if let Some((i, splitter)) = &mut self.current {
            let i = *i;
            if self.stopped == Some(i) {
                self.current = None;
                return Some(vec![Step::End]);
            }
            let mut bytes = 0;
            while bytes < BATCH_BYTES && steps.len() < BATCH_PIECES {
                match splitter.next_chunk() {
                    Ok(Some(chunk)) => {
                        bytes += chunk.bytes.len();
                        steps.push(Step::Piece(i, chunk));
                    }
                    Ok(None) => {
                        steps.push(Step::End);
                        self.current = None;
                        break;
                    }
                    Err(e) => {
                        steps.push(Step::Error(io_error(&self.inputs[i].name, &e)));
                        steps.push(Step::End);
                        self.current = None;
                        break;
                    }
                }
            }
            return Some(steps);
        }
        let mut bytes = 0;
        while self.current.is_none() && bytes < WHOLE_FILE && steps.len() < BATCH_FILES {
            let Some(input) = self.inputs.get(self.next_input) else {
                break;
            };
            let i = self.next_input;
            self.next_input += 1;
            // A stat here, the open and read in the worker. An input that is not a small regular
            // file (a large one, a pipe) is split here; one that cannot be stat'ed fails to open.
            let size = match &input.source {
                Source::File(path) => std::fs::metadata(path).map_or(Some(0), |m| {
                    (m.is_file() && m.len() <= WHOLE_FILE).then_some(m.len())
                }),
                _ => None,
            };
            match (size, &input.source) {
                (Some(len), Source::File(path)) => {
                    bytes += len;
                    steps.push(Step::Whole(i, path));
                }
                _ => match open(input) {
                    Ok(reader) => {
                        steps.push(Step::Begin(i));
                        self.current = Some((i, Splitter::new(reader)));
                    }
                    Err(e) => steps.push(Step::Error(*e)),
                },
            }
        }
        (!steps.is_empty()).then_some(steps)
    }
}

/// Lints and renders pieces.
struct Worker<'a> {
    names: &'a [&'a str],
    settings: &'a Settings<'a>,
    renderer: &'a Renderer<'a>,
}

impl Worker<'_> {
    fn piece(&self, i: usize, chunk: &Chunk) -> Rendered {
        let name = self.names[i];
        let c = lint_chunk(name, chunk, &self.settings.opts, self.settings.fix);
        self.renderer.render(name, c)
    }

    /// A job's results, and the input it stopped, if any.
    fn run(&self, steps: Vec<Step<'_>>) -> (Vec<Done>, Option<usize>) {
        let mut done = Vec::with_capacity(steps.len());
        let mut stopped = None;
        for step in steps {
            match step {
                Step::Begin(i) => done.push(Done::Begin(i)),
                // The pieces after an unreadable one are not reported.
                Step::Piece(i, _) if stopped == Some(i) => {}
                Step::Piece(i, chunk) => {
                    let r = self.piece(i, &chunk);
                    if r.stop {
                        stopped = Some(i);
                    }
                    done.push(Done::Piece(r));
                }
                Step::Whole(i, path) => self.whole(i, path, &mut done),
                Step::Error(e) => done.push(Done::Error(e)),
                Step::End => done.push(Done::End),
            }
        }
        (done, stopped)
    }

    fn whole(&self, i: usize, path: &Path, done: &mut Vec<Done>) {
        let name = self.names[i];
        let mut bytes = Vec::new();
        let read = match File::open(path) {
            Ok(mut f) => f.read_to_end(&mut bytes),
            Err(e) => return done.push(Done::Error(io_error(name, &e))),
        };
        done.push(Done::Begin(i));
        match read {
            // Reading from a slice cannot fail.
            Ok(_) => {
                for chunk in Splitter::new(&bytes[..]).map_while(Result::ok) {
                    let r = self.piece(i, &chunk);
                    let stop = r.stop;
                    done.push(Done::Piece(r));
                    if stop {
                        break;
                    }
                }
            }
            Err(e) => done.push(Done::Error(io_error(name, &e))),
        }
        done.push(Done::End);
    }
}

impl Sink<'_, '_> {
    fn apply(&mut self, names: &[&str], done: Vec<Done>) -> io::Result<()> {
        for d in done {
            match d {
                Done::Begin(i) => self.begin(names[i])?,
                Done::Piece(r) => self.piece(r)?,
                Done::Error(e) => self.error(e)?,
                Done::End => self.end()?,
            }
        }
        Ok(())
    }
}

/// What the workers share.
struct Shared<'i> {
    jobs: Jobs<'i>,
    /// Jobs handed out, and written.
    handed: usize,
    written: usize,
    /// Writing failed (or a worker panicked): stop.
    cancel: bool,
}

fn lock<'m, 'i>(m: &'m Mutex<Shared<'i>>) -> MutexGuard<'m, Shared<'i>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cancels the run when its worker unwinds, so no other thread waits for its job forever.
struct CancelOnPanic<'s, 'i>(&'s Mutex<Shared<'i>>, &'s Condvar);

impl Drop for CancelOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.0).cancel = true;
            self.1.notify_all();
        }
    }
}

/// Lints `inputs` and writes the report to `out` (and with `fix`, the fixed manifests to
/// `fixed_out`). Returns the report without its files, for the exit code.
pub(crate) fn run<'w>(
    inputs: Vec<Input>,
    settings: &Settings<'_>,
    remote: Option<&Remote>,
    out: &'w mut dyn Write,
    fixed_out: Option<&'w mut dyn Write>,
) -> io::Result<Report> {
    let rules = rule_docs();
    let renderer = Renderer {
        format: settings.format,
        style: settings.style,
        rules: &rules,
    };
    let mut sink = Sink {
        format: settings.format,
        style: settings.style,
        opts: settings.opts,
        out,
        fixed_out,
        body: Spill::default(),
        later: Spill::default(),
        summary: Summary::default(),
        errors: Vec::new(),
        source: String::new(),
        objects: 0,
        skipped: 0,
        results: 0,
        stopped: false,
    };
    if let Some(remote) = remote {
        for input in &inputs {
            lint_remote(input, settings, remote, &renderer, &mut sink)?;
        }
        return sink.finish(&rules);
    }

    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let worker = Worker {
        names: &names,
        settings,
        renderer: &renderer,
    };
    let mut jobs = Jobs {
        inputs: &inputs,
        next_input: 0,
        current: None,
        stopped: None,
    };
    if settings.jobs <= 1 {
        while let Some(steps) = jobs.next() {
            let (done, stopped) = worker.run(steps);
            jobs.stopped = stopped.or(jobs.stopped);
            sink.apply(&names, done)?;
        }
        return sink.finish(&rules);
    }

    let shared = Mutex::new(Shared {
        jobs,
        handed: 0,
        written: 0,
        cancel: false,
    });
    let wake = Condvar::new();
    let ahead = JOBS_AHEAD * settings.jobs;
    let (tx, rx) = mpsc::channel::<(usize, Vec<Done>)>();
    std::thread::scope(|scope| {
        for _ in 0..settings.jobs {
            let tx = tx.clone();
            let (shared, wake, worker) = (&shared, &wake, &worker);
            scope.spawn(move || {
                let _cancel = CancelOnPanic(shared, wake);
                let mut stopped = None;
                loop {
                    let (seq, steps) = {
                        let mut s = lock(shared);
                        s.jobs.stopped = stopped.or(s.jobs.stopped);
                        while !s.cancel && s.handed >= s.written + ahead {
                            s = wake.wait(s).unwrap_or_else(|e| e.into_inner());
                        }
                        if s.cancel {
                            return;
                        }
                        let Some(steps) = s.jobs.next() else {
                            return;
                        };
                        s.handed += 1;
                        (s.handed - 1, steps)
                    };
                    let done;
                    (done, stopped) = worker.run(steps);
                    if tx.send((seq, done)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        // Results come in any order; they are written in the jobs' order.
        let mut ready = BTreeMap::new();
        let mut next = 0;
        let mut written = Ok(());
        for (seq, done) in &rx {
            ready.insert(seq, done);
            while let Some(done) = ready.remove(&next) {
                written = sink.apply(&names, done);
                if written.is_err() {
                    break;
                }
                next += 1;
            }
            let mut s = lock(&shared);
            s.written = next;
            s.cancel |= written.is_err();
            drop(s);
            wake.notify_all();
            if written.is_err() {
                break;
            }
        }
        written
    })?;
    sink.finish(&rules)
}

/// `lint --remote`: one request per input, in order.
fn lint_remote(
    input: &Input,
    settings: &Settings<'_>,
    remote: &Remote,
    renderer: &Renderer<'_>,
    sink: &mut Sink<'_, '_>,
) -> io::Result<()> {
    let mut bytes = Vec::new();
    if let Err(e) = open(input).and_then(|mut r| {
        r.read_to_end(&mut bytes)
            .map_err(|e| Box::new(io_error(&input.name, &e)))
    }) {
        return sink.error(*e);
    }
    let text = match decode(&input.name, &bytes) {
        Ok(t) => t,
        Err(e) => return sink.error(*e),
    };
    let query = LintQuery {
        namespace: Some(settings.opts.namespace.to_string()),
        operation: Some(settings.opts.operation.as_str().into()),
        format: Some("json".into()),
    };
    match remote.lint(&input.name, text.as_bytes(), &query) {
        Ok(file) => {
            let fixed = settings.fix.then(|| {
                let docs = super::report::parse(text).unwrap_or_default();
                fixed_manifests(&docs, &file.objects)
            });
            let c = ChunkLinted {
                objects: file.objects,
                skipped: file.skipped,
                fixed,
                ..ChunkLinted::default()
            };
            sink.begin(&input.name)?;
            sink.piece(renderer.render(&input.name, c))?;
            sink.end()
        }
        Err(errs) => errs.into_iter().try_for_each(|e| sink.error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_print_as_inside_their_document() {
        let inner = json!({"b": {"c": [1, {"d": []}], "e": {}}, "a": "x\ny"});
        let whole = json!({"files": [{"objects": [inner.clone()]}]});
        let printed = serde_json::to_string_pretty(&whole).unwrap();
        assert!(printed.contains(&nested(&inner, 8)), "{printed}");
    }

    #[test]
    fn small_files_go_whole_large_ones_in_pieces_and_a_stop_ends_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.yaml");
        let large = dir.path().join("large.yaml");
        std::fs::write(&small, "a: 1\n---\nb: 2\n").unwrap();
        // 200 documents of 1 KiB: past WHOLE_FILE, more pieces than one job holds.
        let doc = format!("---\nx: {}\n", "y".repeat(1018));
        std::fs::write(&large, doc.repeat(200)).unwrap();
        let input = |p: &Path| Input {
            name: p.to_string_lossy().into_owned(),
            source: Source::File(p.to_path_buf()),
        };
        let missing = InputError::new("gone", ErrorKind::Io, "cannot read");
        let inputs = [
            input(&small),
            input(&large),
            Input {
                name: "gone".into(),
                source: Source::Failed(missing),
            },
            input(&large),
        ];
        let mut jobs = Jobs {
            inputs: &inputs,
            next_input: 0,
            current: None,
            stopped: None,
        };
        let kinds = |steps: &[Step<'_>]| -> String {
            steps
                .iter()
                .map(|s| match s {
                    Step::Begin(i) => format!("B{i}"),
                    Step::Piece(i, _) => format!("P{i}"),
                    Step::Whole(i, _) => format!("W{i}"),
                    Step::Error(_) => "E".into(),
                    Step::End => "/".into(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        // The small file and the opening of the large one.
        assert_eq!(kinds(&jobs.next().unwrap()), "W0 B1");
        // 64 KiB of pieces per job.
        let job = jobs.next().unwrap();
        assert_eq!(kinds(&job), ["P1"; 64].join(" "));
        let Step::Piece(_, first) = &job[0] else {
            unreachable!()
        };
        assert_eq!((first.document, first.line), (0, 0));
        assert_eq!(jobs.next().unwrap().len(), 64);
        assert_eq!(jobs.next().unwrap().len(), 64);
        assert_eq!(kinds(&jobs.next().unwrap()), ["P1"; 8].join(" ") + " /");
        assert_eq!(kinds(&jobs.next().unwrap()), "E B3");
        // A worker saw an unreadable piece of input 3: its next job ends it.
        assert_eq!(jobs.next().unwrap().len(), 64);
        jobs.stopped = Some(3);
        assert_eq!(kinds(&jobs.next().unwrap()), "/");
        assert!(jobs.next().is_none());
    }

    #[test]
    fn spills_move_to_a_file_and_come_back_whole() {
        let mut spill = Spill {
            limit: 16,
            ..Spill::default()
        };
        assert!(spill.empty);
        let mut want = Vec::new();
        for i in 0..100 {
            let piece = format!("piece {i}\n");
            spill.write(piece.as_bytes()).unwrap();
            want.extend_from_slice(piece.as_bytes());
        }
        assert!(spill.file.is_some() && !spill.empty);
        let mut got = Vec::new();
        spill.drain(&mut got).unwrap();
        assert_eq!(got, want);
        assert!(spill.empty && spill.file.is_none());
        spill.write(b"again").unwrap();
        let mut got = Vec::new();
        spill.drain(&mut got).unwrap();
        assert_eq!(got, b"again");
    }
}
