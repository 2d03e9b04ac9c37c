//! Quantized storage for frozen linear weights: 8-bit absmax (int8) and 4-bit NormalFloat (NF4, QLoRA), both in
//! blocks of [`BLOCK`] consecutive weights of one row, each block with its own absmax scale; NF4 optionally
//! quantizes those scales again (double quantization).
//!
//! Why blocks of 64 inside a row (and not one scale per row as LLM.int8's vector-wise quantization): a weight
//! outlier then coarsens only its 64 neighbours instead of a whole row of 2 000–8 000, the error bound is the
//! same for both formats, and the overhead is one f32 per 64 weights (int8: 1.06 bytes per weight, 0.27× f32;
//! NF4: 0.56, or 0.52 with double quantization). Blocks never cross rows, so any run of rows or of 64-column
//! blocks dequantizes on its own — the matmul kernels ([`quantized_matmul`]) dequantize one tile at a time and the full
//! f32 matrix never exists.

mod matmul;
mod nf4;

use rayon::prelude::*;

pub use matmul::{quantized_matmul, quantized_matmul_reference};
pub use nf4::NF4_CODE;

/// Weights per quantization block (along a row).
pub const BLOCK: usize = 64;
/// Block scales per double-quantization group.
pub const SCALE_GROUP: usize = 256;

/// How a backbone's frozen linear weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    /// In the compute dtype (no quantization).
    #[default]
    None,
    /// 8-bit absmax, blocks of 64.
    Int8,
    /// 4-bit NormalFloat, blocks of 64; `double_quant` also stores the block scales in 8 bits.
    Nf4 { double_quant: bool },
}

impl Quantization {
    /// The format for quantized storage, or `None` for dense weights.
    pub fn format(self) -> Option<QuantFormat> {
        match self {
            Quantization::None => None,
            Quantization::Int8 => Some(QuantFormat::Int8),
            Quantization::Nf4 { .. } => Some(QuantFormat::Nf4),
        }
    }

    /// Bytes per weight of quantized storage (codes and scales), for memory estimates.
    pub fn bytes_per_weight(self) -> Option<f64> {
        let block = BLOCK as f64;
        match self {
            Quantization::None => None,
            Quantization::Int8 => Some(1.0 + 4.0 / block),
            Quantization::Nf4 {
                double_quant: false,
            } => Some(0.5 + 4.0 / block),
            Quantization::Nf4 { double_quant: true } => {
                Some(0.5 + (1.0 + 8.0 / SCALE_GROUP as f64) / block)
            }
        }
    }
}

/// The code of a quantized matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantFormat {
    Int8,
    Nf4,
}

/// Block scales: plain f32, or double-quantized: per group of [`SCALE_GROUP`] scales, each stored as an 8-bit
/// step on a log₂ scale between the group's smallest and largest scale (code 0 = an all-zero block). A log scale
/// (rather than linear steps around the mean) keeps the error relative, so one outlier block in a group does not
/// wipe out the small scales beside it — the reason bitsandbytes uses a non-linear 8-bit map here too.
#[derive(Debug, Clone)]
enum Scales {
    F32(Vec<f32>),
    Double {
        codes: Vec<u8>,
        log_min: Vec<f32>,
        log_step: Vec<f32>,
    },
}

impl Scales {
    fn get(&self, i: usize) -> f32 {
        match self {
            Scales::F32(s) => s[i],
            Scales::Double {
                codes,
                log_min,
                log_step,
            } => match codes[i] {
                0 => 0.0,
                c => {
                    let g = i / SCALE_GROUP;
                    (log_min[g] + (c - 1) as f32 * log_step[g]).exp2()
                }
            },
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Scales::F32(s) => s.len() * 4,
            Scales::Double {
                codes,
                log_min,
                log_step,
            } => codes.len() + 4 * (log_min.len() + log_step.len()),
        }
    }

    fn double_quantize(scales: &[f32]) -> Self {
        let groups = scales.len().div_ceil(SCALE_GROUP);
        let mut codes = Vec::with_capacity(scales.len());
        let mut log_min = Vec::with_capacity(groups);
        let mut log_step = Vec::with_capacity(groups);
        for group in scales.chunks(SCALE_GROUP) {
            let logs = group.iter().filter(|&&s| s > 0.0).map(|s| s.log2());
            let (lo, hi) = logs.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), l| {
                (lo.min(l), hi.max(l))
            });
            let (lo, step) = if lo.is_finite() {
                (lo, (hi - lo) / 254.0)
            } else {
                (0.0, 0.0)
            };
            for &s in group {
                let code = if s <= 0.0 {
                    0
                } else if step > 0.0 {
                    1 + ((s.log2() - lo) / step).round().clamp(0.0, 254.0) as u8
                } else {
                    1
                };
                codes.push(code);
            }
            log_min.push(lo);
            log_step.push(step);
        }
        Scales::Double {
            codes,
            log_min,
            log_step,
        }
    }
}

/// A `(rows, cols)` matrix stored quantized, row-major, in blocks of [`BLOCK`] columns.
#[derive(Debug, Clone)]
pub struct QuantizedMatrix {
    format: QuantFormat,
    rows: usize,
    cols: usize,
    /// Int8: `rows × cols` codes (as bytes of i8). NF4: `rows × ⌈cols/2⌉` bytes, even column in the low nibble.
    codes: Vec<u8>,
    /// One per block, row-major: `rows × ⌈cols/64⌉`.
    scales: Scales,
}

impl QuantizedMatrix {
    /// Quantizes the row-major `(rows, cols)` matrix `w`.
    pub fn quantize(w: &[f32], rows: usize, cols: usize, quantization: Quantization) -> Self {
        assert_eq!(
            w.len(),
            rows * cols,
            "quantize: buffer does not match shape"
        );
        let format = quantization
            .format()
            .expect("quantize needs a quantized format");
        let blocks_per_row = cols.div_ceil(BLOCK);
        let mut scales = vec![0f32; rows * blocks_per_row];
        let row_bytes = Self::row_bytes(format, cols);
        let mut codes = vec![0u8; rows * row_bytes];
        if rows > 0 && cols > 0 {
            codes
                .par_chunks_mut(row_bytes)
                .zip(scales.par_chunks_mut(blocks_per_row))
                .zip(w.par_chunks(cols))
                .for_each(|((out, row_scales), row)| quantize_row(format, row, out, row_scales));
        }
        let scales = match quantization {
            Quantization::Nf4 { double_quant: true } => Scales::double_quantize(&scales),
            _ => Scales::F32(scales),
        };
        Self {
            format,
            rows,
            cols,
            codes,
            scales,
        }
    }

    fn row_bytes(format: QuantFormat, cols: usize) -> usize {
        match format {
            QuantFormat::Int8 => cols,
            QuantFormat::Nf4 => cols.div_ceil(2),
        }
    }

    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The code.
    pub fn format(&self) -> QuantFormat {
        self.format
    }

    /// Bytes of codes and scales.
    pub fn storage_bytes(&self) -> usize {
        self.codes.len() + self.scales.bytes()
    }

    /// The scale of block `block` of row `row`.
    fn scale(&self, row: usize, block: usize) -> f32 {
        self.scales.get(row * self.cols.div_ceil(BLOCK) + block)
    }

    /// Dequantizes columns `c0..c1` of row `row` into `out` (`c1 - c0` values); `c0` is a multiple of
    /// [`BLOCK`].
    fn dequantize_row_span(&self, row: usize, c0: usize, c1: usize, out: &mut [f32]) {
        debug_assert!(c0.is_multiple_of(BLOCK) && out.len() == c1 - c0);
        let row_bytes = Self::row_bytes(self.format, self.cols);
        let codes = &self.codes[row * row_bytes..(row + 1) * row_bytes];
        let mut start = c0;
        while start < c1 {
            let end = (start + BLOCK).min(c1);
            let scale = self.scale(row, start / BLOCK);
            let dst = &mut out[start - c0..end - c0];
            match self.format {
                QuantFormat::Int8 => {
                    for (d, &q) in dst.iter_mut().zip(&codes[start..end]) {
                        *d = (q as i8) as f32 * scale;
                    }
                }
                QuantFormat::Nf4 => {
                    let mut table = [0f32; 16];
                    for (t, c) in table.iter_mut().zip(NF4_CODE) {
                        *t = c * scale;
                    }
                    // `start` is even (a multiple of BLOCK), so pairs of columns share a byte.
                    let bytes = &codes[start / 2..end.div_ceil(2)];
                    for (pair, &byte) in dst.chunks_mut(2).zip(bytes) {
                        pair[0] = table[(byte & 0x0f) as usize];
                        if let Some(hi) = pair.get_mut(1) {
                            *hi = table[(byte >> 4) as usize];
                        }
                    }
                }
            }
            start = end;
        }
    }

    /// Dequantizes rows `r0..r1` into `out` (row-major, `(r1 - r0) × cols`).
    pub fn dequantize_rows(&self, r0: usize, r1: usize, out: &mut [f32]) {
        for (i, row) in (r0..r1).enumerate() {
            self.dequantize_row_span(
                row,
                0,
                self.cols,
                &mut out[i * self.cols..(i + 1) * self.cols],
            );
        }
    }

    /// Dequantizes columns `c0..c1` (`c0` a multiple of [`BLOCK`]) of every row into `out` (row-major,
    /// `rows × (c1 - c0)`).
    pub fn dequantize_cols(&self, c0: usize, c1: usize, out: &mut [f32]) {
        let width = c1 - c0;
        for row in 0..self.rows {
            self.dequantize_row_span(row, c0, c1, &mut out[row * width..(row + 1) * width]);
        }
    }

    /// The whole matrix in f32 (for tests, DoRA norms and merging; training never calls it per step).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequantize_rows(0, self.rows, &mut out);
        out
    }
}

/// Quantizes one row: its codes into `out`, one scale per block into `scales`.
fn quantize_row(format: QuantFormat, row: &[f32], out: &mut [u8], scales: &mut [f32]) {
    for ((b, block), scale) in row.chunks(BLOCK).enumerate().zip(scales.iter_mut()) {
        let absmax = block.iter().map(|v| v.abs()).fold(0f32, f32::max);
        let start = b * BLOCK;
        match format {
            QuantFormat::Int8 => {
                *scale = absmax / 127.0;
                let inv = if absmax > 0.0 { 127.0 / absmax } else { 0.0 };
                for (j, &v) in block.iter().enumerate() {
                    out[start + j] = ((v * inv).round().clamp(-127.0, 127.0) as i8) as u8;
                }
            }
            QuantFormat::Nf4 => {
                *scale = absmax;
                let inv = if absmax > 0.0 { 1.0 / absmax } else { 0.0 };
                for (j, &v) in block.iter().enumerate() {
                    let col = start + j;
                    out[col / 2] |= nf4::nearest(v * inv) << (4 * (col % 2));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
