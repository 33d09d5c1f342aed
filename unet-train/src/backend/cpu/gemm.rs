//! A checked, safe front to `matrixmultiply::sgemm` for the CPU backend's convolutions.
//!
//! Matrices are strided views into slices: element `(r, c)` of a [`Mat`] is
//! `data[r·rs + c·cs]`. A transpose is the same data with `rs` and `cs` swapped
//! ([`Mat::t`]). `matrixmultiply` splits its loops over the output's rows and columns only
//! (never over `k`), so results do not depend on the number of threads it uses.

/// A read-only strided matrix view.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    /// Backing elements.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride (elements).
    pub rs: usize,
    /// Column stride (elements).
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    pub fn rm(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A writable strided matrix view.
#[derive(Debug)]
pub struct MatMut<'a> {
    /// Backing elements.
    pub data: &'a mut [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride (elements).
    pub rs: usize,
    /// Column stride (elements).
    pub cs: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    pub fn rm(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
}

/// Largest index a view touches plus one (0 for an empty view).
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `C ← α·A·B + β·C`. If `β == 0`, `C`'s previous contents are ignored (may be anything, even
/// NaN). Panics if the shapes disagree or a view reaches past its slice — both are bugs of the
/// caller inside this crate, never a consequence of user input (sizes are checked earlier).
pub fn sgemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    assert!(
        a.rows == c.rows && b.cols == c.cols && a.cols == b.rows,
        "sgemm: shape mismatch"
    );
    assert!(
        extent(a.rows, a.cols, a.rs, a.cs) <= a.data.len(),
        "sgemm: A out of bounds"
    );
    assert!(
        extent(b.rows, b.cols, b.rs, b.cs) <= b.data.len(),
        "sgemm: B out of bounds"
    );
    assert!(
        extent(c.rows, c.cols, c.rs, c.cs) <= c.data.len(),
        "sgemm: C out of bounds"
    );
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    if a.cols == 0 {
        // Empty inner dimension: C ← β·C (matrixmultiply handles it too; be explicit).
        for r in 0..c.rows {
            for col in 0..c.cols {
                let v = &mut c.data[r * c.rs + col * c.cs];
                *v = if beta == 0.0 { 0.0 } else { beta * *v };
            }
        }
        return;
    }
    // SAFETY: the asserts above prove that every (r, c) index of A (m×k), B (k×n) and C (m×n)
    // with the given strides lies inside the respective slice; strides are non-negative and fit
    // in isize because they index existing slices. C is borrowed mutably and exclusively, so it
    // does not alias A or B.
    unsafe {
        matrixmultiply::sgemm(
            c.rows,
            a.cols,
            c.cols,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.rs as isize,
            c.cs as isize,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_with_transposes_and_beta() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
        let c0 = c.clone();
        // B stored as n×k row-major, used transposed.
        sgemm(
            2.0,
            Mat::rm(&a, m, k),
            Mat::rm(&b, n, k).t(),
            0.5,
            MatMut::rm(&mut c, m, n),
        );
        for i in 0..m {
            for j in 0..n {
                let s: f32 = (0..k).map(|l| a[i * k + l] * b[j * k + l]).sum();
                let want = 2.0 * s + 0.5 * c0[i * n + j];
                assert!((c[i * n + j] - want).abs() < 1e-5);
            }
        }
    }
}
