/// Cuts one normalized image into patch rows for the patch-embedding GEMM, normalizing on the
/// way: `out[py·(W/p) + px][c·p·p + ky·p + kx] = (x[c][py·p+ky][px·p+kx] − mean[c]) / std[c]`.
/// `x` is CHW (`c·h·w` floats), `out` is `[patches, c·p·p]`.
#[allow(clippy::too_many_arguments)] // the image geometry is six plain numbers
pub fn patchify(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    mean: &[f32],
    std: &[f32],
    out: &mut [f32],
) {
    let (gw, row) = (w / p, c * p * p);
    for py in 0..h / p {
        for px in 0..gw {
            let o = &mut out[(py * gw + px) * row..][..row];
            for ch in 0..c {
                let inv = 1.0 / std[ch];
                for ky in 0..p {
                    let src = &x[ch * h * w + (py * p + ky) * w + px * p..][..p];
                    let dst = &mut o[ch * p * p + ky * p..][..p];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = (s - mean[ch]) * inv;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_2x4_image() {
        // One channel 2×4 image, patch 2 → two patches; mean 1, std 2.
        let x = [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0];
        let mut out = [0f32; 8];
        patchify(&x, 1, 2, 4, 2, &[1.0], &[2.0], &mut out);
        assert_eq!(out, [0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
    }
}
