//! Connected components of binary masks and of class maps.
//!
//! Connectivity: [`Connectivity::Four`] joins pixels sharing an edge (up/down/left/right);
//! [`Connectivity::Eight`] also joins diagonal neighbours. Components are numbered `1..=n` in
//! raster order of their first pixel (row-major scan); 0 marks pixels outside the mask.
//! Implemented as a two-pass union-find labelling.

use ndarray::{Array2, ArrayView2};

/// Which neighbours are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Edge neighbours only.
    Four,
    /// Edge and corner neighbours.
    Eight,
}

fn find(parent: &mut [u32], mut a: u32) -> u32 {
    while parent[a as usize] != a {
        let g = parent[parent[a as usize] as usize];
        parent[a as usize] = g;
        a = g;
    }
    a
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        // Keep the smaller provisional label as root: roots then appear in raster order.
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

/// Components of the `true` pixels of `mask`: `(labels [H, W], count)`.
pub fn label_components(mask: ArrayView2<bool>, conn: Connectivity) -> (Array2<u32>, u32) {
    instances_from_classes(mask.mapv(u8::from).view(), conn)
}

/// Instances of a class map: the connected components of the pixels of every non-zero class,
/// each component of each class its own id (`1..=n` in raster order), background (class 0)
/// is 0. Pixels of different classes are never joined.
pub fn instances_from_classes(classes: ArrayView2<u8>, conn: Connectivity) -> (Array2<u32>, u32) {
    let (h, w) = classes.dim();
    // A component-labelling of the "same non-zero class" relation: run union-find directly.
    let mut parent: Vec<u32> = vec![0];
    let mut lab = Array2::<u32>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            let c = classes[[y, x]];
            if c == 0 {
                continue;
            }
            const CAND: [(isize, isize); 4] = [(0, -1), (-1, 0), (-1, -1), (-1, 1)];
            let nc = if conn == Connectivity::Eight { 4 } else { 2 };
            let mut l = 0u32;
            for &(dy, dx) in &CAND[..nc] {
                let (yy, xx) = (y as isize + dy, x as isize + dx);
                if yy < 0 || xx < 0 || xx as usize >= w {
                    continue;
                }
                let (yy, xx) = (yy as usize, xx as usize);
                if classes[[yy, xx]] != c {
                    continue;
                }
                let v = lab[[yy, xx]];
                if l == 0 {
                    l = v;
                } else {
                    union(&mut parent, l, v);
                    l = l.min(v);
                }
            }
            if l == 0 {
                l = parent.len() as u32;
                parent.push(l);
            }
            lab[[y, x]] = l;
        }
    }
    let mut final_id = vec![0u32; parent.len()];
    let mut n = 0u32;
    for l in 1..parent.len() as u32 {
        let r = find(&mut parent, l);
        if r == l {
            n += 1;
            final_id[l as usize] = n;
        }
    }
    for l in 1..parent.len() as u32 {
        let r = find(&mut parent, l);
        final_id[l as usize] = final_id[r as usize];
    }
    lab.mapv_inplace(|v| final_id[v as usize]);
    (lab, n)
}
