//! The NF4 code book: the 16 quantiles of a standard normal distribution normalised to [-1, 1] with an exact
//! zero (Dettmers et al., 2023, QLoRA, appendix E), as bitsandbytes defines them.

/// The 16 NF4 values, ascending; code `i` means `NF4_CODE[i] · absmax`.
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// Midpoints between neighbouring code values: the code of `x` is the number of midpoints below it.
const MIDPOINTS: [f32; 15] = {
    let mut m = [0f32; 15];
    let mut i = 0;
    while i < 15 {
        m[i] = 0.5 * (NF4_CODE[i] + NF4_CODE[i + 1]);
        i += 1;
    }
    m
};

/// The code of the NF4 value nearest to `x` (`x` in [-1, 1]; values outside clamp to the ends).
pub(crate) fn nearest(x: f32) -> u8 {
    MIDPOINTS.partition_point(|&m| m < x) as u8
}
