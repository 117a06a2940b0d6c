//! Shared input plumbing for loaders: streaming line and CSV readers that count bytes for
//! progress, decode strictly (bad UTF-8 is an error naming file and line) and turn every problem
//! into a [`LoadError`] with a location.

use super::{InputFile, LoadError};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How often (in lines/records) loaders should report progress to the sink.
pub const PROGRESS_EVERY: u64 = 8192;

/// A reader that counts the bytes that pass through it.
#[derive(Debug)]
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    /// Wrap `inner`; the returned counter can be read while the reader is owned elsewhere.
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Self {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Open a file for streaming, mapping the error to the file's name.
pub fn open(
    file: &InputFile,
) -> Result<(BufReader<CountingReader<File>>, Arc<AtomicU64>), LoadError> {
    let f = File::open(&file.path).map_err(|e| LoadError::Io {
        file: file.name.clone(),
        source: e,
    })?;
    let (r, count) = CountingReader::new(f);
    Ok((BufReader::with_capacity(1 << 20, r), count))
}

/// Total size in bytes of a set of inputs (for progress totals).
pub fn total_size(files: &[InputFile]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum()
}

/// Text encodings a line reader can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Strict UTF-8: invalid bytes are an error.
    Utf8,
    /// ISO-8859-1 / Windows-1252 (CMS ICD-9-CM description files).
    Latin1,
}

/// Streams the lines of a file, with 1-based line numbers, without holding the file in memory.
pub struct LineReader {
    name: String,
    reader: BufReader<CountingReader<File>>,
    count: Arc<AtomicU64>,
    buf: Vec<u8>,
    line: String,
    line_no: u64,
    encoding: Encoding,
    /// Whether the last line read ended without a newline (a possibly truncated file).
    pub last_line_unterminated: bool,
}

impl LineReader {
    /// Open `file` for UTF-8 line reading.
    pub fn open(file: &InputFile) -> Result<Self, LoadError> {
        Self::open_with(file, Encoding::Utf8)
    }

    /// Open `file` with an explicit encoding.
    pub fn open_with(file: &InputFile, encoding: Encoding) -> Result<Self, LoadError> {
        let (reader, count) = open(file)?;
        Ok(Self {
            name: file.name.clone(),
            reader,
            count,
            buf: Vec::with_capacity(512),
            line: String::with_capacity(512),
            line_no: 0,
            encoding,
            last_line_unterminated: false,
        })
    }

    /// The next line without its line terminator (`\n` or `\r\n`), or `None` at end of file.
    /// A UTF-8 BOM at the start of the file is skipped.
    pub fn next_line(&mut self) -> Result<Option<&str>, LoadError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| LoadError::Io {
                file: self.name.clone(),
                source: e,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        self.last_line_unterminated = self.buf.last() != Some(&b'\n');
        while matches!(self.buf.last(), Some(b'\n') | Some(b'\r')) {
            self.buf.pop();
        }
        let mut bytes: &[u8] = &self.buf;
        if self.line_no == 1 && bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
            bytes = &bytes[3..];
        }
        self.line.clear();
        match self.encoding {
            Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(s) => self.line.push_str(s),
                Err(e) => {
                    return Err(LoadError::malformed(
                        &self.name,
                        self.line_no,
                        format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
                    ))
                }
            },
            Encoding::Latin1 => {
                let (s, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
                self.line.push_str(&s);
            }
        }
        Ok(Some(&self.line))
    }

    /// 1-based number of the line last returned.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The file's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An error at the current line.
    pub fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError::malformed(&self.name, self.line_no, message)
    }
}

/// A [`BufRead`] adapter that counts the newlines in the bytes its consumer has consumed, so a
/// pull parser working on top of it (quick-xml) can report the 1-based line it has reached.
pub struct LineCountingBufRead<R> {
    inner: R,
    newlines: u64,
    consumed: u64,
}

impl<R: BufRead> LineCountingBufRead<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            newlines: 0,
            consumed: 0,
        }
    }

    /// 1-based line of the next unconsumed byte.
    pub fn line(&self) -> u64 {
        self.newlines + 1
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

impl<R: BufRead> Read for LineCountingBufRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.newlines += count_newlines(&buf[..n]);
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineCountingBufRead<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if amt > 0 {
            // The buffer returned by the previous `fill_buf` is still there: asking again does no I/O.
            if let Ok(buf) = self.inner.fill_buf() {
                let end = amt.min(buf.len());
                self.newlines += count_newlines(&buf[..end]);
            }
            self.consumed += amt as u64;
        }
        self.inner.consume(amt);
    }
}

/// Split an RRF line (`|`-separated with a trailing `|`) and check its field count.
/// Real releases sometimes add columns: `min_fields` is the number the loader needs, and more
/// are tolerated.
pub fn split_rrf<'a>(
    lines: &LineReader,
    line: &'a str,
    min_fields: usize,
) -> Result<Vec<&'a str>, LoadError> {
    let body = line.strip_suffix('|').ok_or_else(|| {
        lines.error(format!(
            "RRF row does not end with '|' (truncated line?); expected at least {min_fields} fields"
        ))
    })?;
    let fields: Vec<&str> = body.split('|').collect();
    if fields.len() < min_fields {
        return Err(lines.error(format!(
            "expected at least {min_fields} '|'-separated fields, found {}",
            fields.len()
        )));
    }
    Ok(fields)
}

/// A CSV file opened with its header parsed: column lookup by (case-insensitive) name.
pub struct CsvInput {
    name: String,
    reader: csv::Reader<CountingReader<File>>,
    count: Arc<AtomicU64>,
    columns: HashMap<String, usize>,
    header: csv::StringRecord,
    record: csv::StringRecord,
    /// Added to the csv crate's line numbers: 1 for CRLF files, where the crate counts the `\n`
    /// of a record's terminator only when it reads the next record, so it reports every record
    /// one line early; 0 for LF files.
    line_shift: u64,
}

/// True when the first line of `file` ends with CRLF (looks at no more than 1 MiB).
fn first_line_is_crlf(file: &InputFile) -> bool {
    let Ok(f) = File::open(&file.path) else {
        return false;
    };
    let mut first = Vec::new();
    match BufReader::new(f.take(1 << 20)).read_until(b'\n', &mut first) {
        Ok(_) => first.ends_with(b"\r\n"),
        Err(_) => false,
    }
}

impl CsvInput {
    /// Open a comma-separated file with a header row. An empty file is an error.
    pub fn open(file: &InputFile) -> Result<Self, LoadError> {
        Self::open_delimited(file, b',')
    }

    /// Open a delimited file with a header row.
    pub fn open_delimited(file: &InputFile, delimiter: u8) -> Result<Self, LoadError> {
        let f = File::open(&file.path).map_err(|e| LoadError::Io {
            file: file.name.clone(),
            source: e,
        })?;
        let (r, count) = CountingReader::new(f);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(1 << 20)
            .from_reader(r);
        let header = reader
            .headers()
            .map_err(|e| csv_error(&file.name, e))?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].trim().is_empty()) {
            return Err(LoadError::malformed(
                &file.name,
                1,
                "empty file: no header row",
            ));
        }
        let mut columns = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            let key = h.trim().trim_start_matches('\u{feff}').to_ascii_uppercase();
            if columns.insert(key.clone(), i).is_some() {
                return Err(LoadError::malformed(
                    &file.name,
                    1,
                    format!("duplicate column '{h}' in header"),
                ));
            }
        }
        Ok(Self {
            name: file.name.clone(),
            reader,
            count,
            columns,
            header,
            record: csv::StringRecord::new(),
            line_shift: u64::from(first_line_is_crlf(file)),
        })
    }

    /// Index of a required column, or an error naming it.
    pub fn require(&self, column: &str) -> Result<usize, LoadError> {
        self.columns
            .get(&column.to_ascii_uppercase())
            .copied()
            .ok_or_else(|| {
                LoadError::malformed(&self.name, 1, format!("missing required column '{column}'"))
            })
    }

    /// Index of an optional column.
    pub fn optional(&self, column: &str) -> Option<usize> {
        self.columns.get(&column.to_ascii_uppercase()).copied()
    }

    /// Read the next record; `None` at end. A row repeating the header is an error (a
    /// concatenated or duplicated header).
    pub fn next_record(&mut self) -> Result<Option<&csv::StringRecord>, LoadError> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                if self.record == self.header {
                    return Err(LoadError::malformed(
                        &self.name,
                        self.line(),
                        "duplicate header row",
                    ));
                }
                Ok(Some(&self.record))
            }
            Err(e) => Err(match csv_error(&self.name, e) {
                LoadError::Malformed {
                    file,
                    line,
                    message,
                } if line > 0 => LoadError::Malformed {
                    file,
                    line: line + self.line_shift,
                    message,
                },
                other => other,
            }),
        }
    }

    /// Read the next record into `out` (reusing its allocation); `false` at end. Unlike
    /// [`CsvInput::next_record`] this leaves `self` free for [`CsvInput::error`] while the
    /// record is in use.
    pub fn read_into(&mut self, out: &mut csv::StringRecord) -> Result<bool, LoadError> {
        let got = self.next_record()?.is_some();
        if got {
            out.clone_from(&self.record);
        }
        Ok(got)
    }

    /// 1-based line where the record last read starts (0 before the first record).
    pub fn line(&self) -> u64 {
        self.record
            .position()
            .map_or(0, |p| p.line() + self.line_shift)
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The file's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An error at the current record.
    pub fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError::malformed(&self.name, self.line(), message)
    }
}

/// Convert a csv crate error into a located [`LoadError`].
pub fn csv_error(file: &str, e: csv::Error) -> LoadError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len} (truncated or malformed row)"),
        csv::ErrorKind::Io(io) => format!("read error: {io}"),
        _ => e.to_string(),
    };
    LoadError::malformed(file, line, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(content: &[u8], name: &str) -> (tempfile::TempDir, InputFile) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        let f = InputFile::from_path(&p);
        (dir, f)
    }

    #[test]
    fn line_reader_reports_bad_utf8_with_line() {
        let (_d, f) = temp(b"ok\nbad \xff here\n", "X.RRF");
        let mut r = LineReader::open(&f).unwrap();
        assert_eq!(r.next_line().unwrap(), Some("ok"));
        let e = r.next_line().unwrap_err().to_string();
        assert!(e.starts_with("X.RRF:2:"), "{e}");
    }

    #[test]
    fn csv_reports_missing_column_and_short_rows() {
        let (_d, f) = temp(b"A,B\n1,2\n3\n", "t.csv");
        let mut c = CsvInput::open(&f).unwrap();
        assert!(c.require("C").unwrap_err().to_string().contains("'C'"));
        assert!(c.next_record().unwrap().is_some());
        let e = c.next_record().unwrap_err().to_string();
        assert!(e.starts_with("t.csv:3:"), "{e}");
    }

    #[test]
    fn csv_lines_are_physical_for_lf_and_crlf_files() {
        for (content, name) in [
            (&b"A,B\n\"x\ny\",1\n2,3\n\"4\",\"\xff\"\n"[..], "lf.csv"),
            (
                &b"A,B\r\n\"x\ny\",1\r\n2,3\r\n\"4\",\"\xff\"\r\n"[..],
                "crlf.csv",
            ),
        ] {
            let (_d, f) = temp(content, name);
            let mut c = CsvInput::open(&f).unwrap();
            c.next_record().unwrap();
            assert_eq!(c.line(), 2, "{name}");
            c.next_record().unwrap();
            assert_eq!(c.line(), 4, "{name}");
            let e = c.next_record().unwrap_err().to_string();
            assert!(e.starts_with(&format!("{name}:5:")), "{e}");
        }
        let (_d, f) = temp(b"A,B\r\n1\r\n", "first.csv");
        let e = CsvInput::open(&f).unwrap().next_record().unwrap_err();
        assert!(e.to_string().starts_with("first.csv:2:"), "{e}");
    }

    #[test]
    fn csv_rejects_empty_and_duplicate_header() {
        let (_d, f) = temp(b"", "e.csv");
        assert!(CsvInput::open(&f).is_err());
        let (_d2, f2) = temp(b"A,B\n1,2\nA,B\n", "d.csv");
        let mut c = CsvInput::open(&f2).unwrap();
        c.next_record().unwrap();
        assert!(c
            .next_record()
            .unwrap_err()
            .to_string()
            .contains("duplicate header"));
    }
}
