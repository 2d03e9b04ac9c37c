//! Custom candle ops where the library wastes work we cannot afford in training. Each has a plain reference
//! built from candle ops beside it and a test of values and gradients against it.

pub mod attention;
pub mod cross_entropy;
pub mod frozen_matmul;
pub mod lora_linear;
pub mod rms_norm;
pub mod small_m;
pub mod softmax;
pub mod swiglu;

/// A pointer that parallel tasks writing disjoint elements of one buffer share.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub(crate) *mut f32);
// SAFETY: every user writes a disjoint set of elements, and the buffer outlives the parallel loop (documented at
// each use).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not the raw field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// The f32 elements of a contiguous CPU storage, or an error naming the op and the operand.
pub(crate) fn contiguous_f32<'a>(
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
    op: &str,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let candle_core::CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: {what} must be f32")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: {what} must be contiguous")
    };
    Ok(&data[start..end])
}

/// How a GEMM writes `dst`: `dst = beta·lhs·rhs`, or `dst += beta·lhs·rhs` with `accumulate`, on these threads.
#[derive(Clone, Copy)]
pub(crate) struct GemmMode {
    pub beta: f32,
    pub accumulate: bool,
    pub parallelism: gemm::Parallelism,
}

/// One thread, `dst = lhs·rhs` (the per-task products of the parallel kernels).
pub(crate) const SERIAL: GemmMode = GemmMode {
    beta: 1.0,
    accumulate: false,
    parallelism: gemm::Parallelism::None,
};

/// f32 `dst (m×n) ← lhs (m×k) · rhs (k×n)` as `mode` says, every operand addressed by (row, column) strides.
///
/// # Safety
/// The pointers must be valid for every element the shapes and strides address; `dst` must not alias the others
/// nor be written by anyone else meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_rs, dst_cs): (usize, usize),
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    mode: GemmMode,
) {
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            mode.accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            mode.beta,
            false,
            false,
            false,
            mode.parallelism,
        );
    }
}

/// `dst = lhs · rhs` in f32: `lhs` is `m×k` row-major, element `(p, j)` of the `k×n` right operand is at
/// `rhs[p·rhs_rs + j·rhs_cs]`, and `dst`'s rows are `dst_rs` apart (its columns contiguous). Overwrites `dst`.
///
/// # Safety
/// The three pointers must be valid for every element these shapes and strides address, and `dst` must not be
/// written by anyone else meanwhile.
pub(crate) unsafe fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    rhs: *const f32,
    rhs_strides: (usize, usize),
    parallelism: gemm::Parallelism,
) {
    let mode = GemmMode {
        parallelism,
        ..SERIAL
    };
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm_strided(
            (m, n, k),
            dst,
            (dst_rs, 1),
            lhs,
            (k, 1),
            rhs,
            rhs_strides,
            mode,
        )
    }
}

/// Test support: checks a kernel against its plain reference on `x` — values within `value_tol`, and the
/// gradient of `Σ coef ⊙ f(x)` with respect to `x` within `grad_tol`.
#[cfg(test)]
pub(crate) fn assert_matches_reference(
    kernel: impl Fn(&candle_core::Tensor) -> crate::Result<candle_core::Tensor>,
    reference: impl Fn(&candle_core::Tensor) -> crate::Result<candle_core::Tensor>,
    x: &candle_core::Var,
    (value_tol, grad_tol): (f32, f32),
) {
    use candle_core::Tensor;
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let (a, b) = (
        kernel(x.as_tensor()).unwrap(),
        reference(x.as_tensor()).unwrap(),
    );
    let diff = max_diff(&a, &b);
    assert!(diff < value_tol, "forward differs by {diff}");
    let coef = Tensor::randn(0f32, 1.0, a.shape(), a.device()).unwrap();
    let grad = |y: Tensor| (y * &coef).unwrap().sum_all().unwrap().backward().unwrap();
    let (ga, gb) = (grad(a), grad(b));
    let diff = max_diff(
        ga.get(x.as_tensor()).unwrap(),
        gb.get(x.as_tensor()).unwrap(),
    );
    assert!(diff < grad_tol, "gradient differs by {diff}");
}
