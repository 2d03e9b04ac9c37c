//! TensorBoard event files: TFRecord framing (length, masked CRC-32C of the length, the record, masked CRC-32C
//! of the record) around `tensorflow.Event` protobuf messages, encoded here field by field (the handful of
//! fields TensorBoard reads: `wall_time`, `step`, `file_version`, `summary.value{tag, simple_value}`, and a
//! text-plugin tensor for the config). What `tf.summary` / `torch.utils.tensorboard` write.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An open `events.out.tfevents.*` file.
pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<unix seconds>.<host>.<pid>` with its `brain.Event:2` header record.
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        std::fs::create_dir_all(dir)?;
        let now = wall_time();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            now as u64,
            std::process::id()
        ));
        let file = File::create(&path)?;
        let mut w = EventWriter { path, file };
        let mut event = Vec::new();
        put_double(&mut event, 1, now);
        put_bytes(&mut event, 3, b"brain.Event:2");
        w.record(&event)?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One scalar `value` under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, value: f32, step: i64) -> std::io::Result<()> {
        let mut v = Vec::new();
        put_bytes(&mut v, 1, tag.as_bytes());
        v.push(0x15); // field 2 (simple_value), fixed32
        v.extend_from_slice(&value.to_le_bytes());
        self.summary(&v, step)
    }

    /// A text under `tag` at `step` (TensorBoard's text plugin; Markdown).
    pub fn text(&mut self, tag: &str, text: &str, step: i64) -> std::io::Result<()> {
        // TensorProto { dtype: DT_STRING (7), tensor_shape: {} (a scalar), string_val: [text] }
        let mut tensor = Vec::new();
        put_varint_field(&mut tensor, 1, 7);
        put_bytes(&mut tensor, 2, &[]);
        put_bytes(&mut tensor, 8, text.as_bytes());
        // SummaryMetadata { plugin_data: { plugin_name: "text" } }
        let mut plugin = Vec::new();
        put_bytes(&mut plugin, 1, b"text");
        let mut metadata = Vec::new();
        put_bytes(&mut metadata, 1, &plugin);
        let mut v = Vec::new();
        put_bytes(&mut v, 1, tag.as_bytes());
        put_bytes(&mut v, 8, &tensor);
        put_bytes(&mut v, 9, &metadata);
        self.summary(&v, step)
    }

    /// An `Event { wall_time, step, summary { value } }` record, flushed.
    fn summary(&mut self, value: &[u8], step: i64) -> std::io::Result<()> {
        let mut summary = Vec::new();
        put_bytes(&mut summary, 1, value);
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        put_varint_field(&mut event, 2, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked_crc(&len).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&buf)?;
        self.file.flush()
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// TFRecord's checksum: CRC-32C, rotated right by 15 and offset by 0xa282ead8.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_varint_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(buf, u64::from(field) << 3);
    put_varint(buf, v);
}

fn put_double(buf: &mut Vec<u8>, field: u32, v: f64) {
    put_varint(buf, (u64::from(field) << 3) | 1);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(buf, (u64::from(field) << 3) | 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the records back: (length, data), checking both checksums.
    fn records(path: &Path) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(path).unwrap();
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            assert_eq!(
                u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()),
                masked_crc(len_bytes)
            );
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(data));
            out.push(data.to_vec());
            at += 16 + len;
        }
        out
    }

    #[test]
    fn records_are_framed_with_masked_crcs_and_carry_the_fields() {
        // CRC-32C of "123456789" is 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(tmp.path()).unwrap();
        w.scalar("train/loss", 1.5, 300).unwrap();
        w.text("config", "lr: 1e-4", 0).unwrap();
        let recs = records(w.path());
        assert_eq!(recs.len(), 3);
        assert!(recs[0].windows(13).any(|x| x == b"brain.Event:2"));
        // step 300 as a varint (0xac 0x02) after field 2's tag, the tag and the float 1.5.
        assert!(recs[1].windows(3).any(|x| x == [0x10, 0xac, 0x02]));
        assert!(recs[1].windows(10).any(|x| x == b"train/loss"));
        assert!(recs[1].windows(4).any(|x| x == 1.5f32.to_le_bytes()));
        assert!(recs[2].windows(8).any(|x| x == b"lr: 1e-4"));
        assert!(w
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("events.out.tfevents."));
    }
}
