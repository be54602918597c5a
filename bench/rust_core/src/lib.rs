//! The Rust counterparts of `Frontier.extend` (node/feeds/merkle.py) and `uscc_verdict`
//! (node/identity/uscc_fast.py), for bench/native_rust.py: same inputs, same answers.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};

/// Append *leaves* (their bytes, hashed here) to a frontier of *size* leaves whose perfect
/// subtree hashes are *hashes* (largest first); the new hashes.
#[pyfunction]
fn frontier_extend(
    py: Python<'_>,
    hashes: Vec<&[u8]>,
    size: u64,
    leaves: Vec<&[u8]>,
) -> Vec<Py<PyBytes>> {
    let mut stack: Vec<[u8; 32]> = hashes
        .iter()
        .map(|h| {
            let mut a = [0u8; 32];
            a.copy_from_slice(h);
            a
        })
        .collect();
    let mut n = size;
    py.allow_threads(|| {
        for data in &leaves {
            let mut h: [u8; 32] = Sha256::new().chain_update([0u8]).chain_update(data).finalize().into();
            let mut k = n;
            while k & 1 == 1 {
                let left = stack.pop().expect("a frontier of its size");
                h = Sha256::new()
                    .chain_update([1u8])
                    .chain_update(left)
                    .chain_update(h)
                    .finalize()
                    .into();
                k >>= 1;
            }
            stack.push(h);
            n += 1;
        }
    });
    stack.iter().map(|h| PyBytes::new(py, h).into()).collect()
}

const FALLBACK: u8 = 0;
const BOTH_OK: u8 = 1;
const ORG_ONLY: u8 = 2;
const FINAL_ONLY: u8 = 3;
const NEITHER: u8 = 4;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

fn categories(authority: u8) -> &'static [u8] {
    match authority {
        b'1' | b'5' | b'N' => b"1239",
        b'2' | b'4' | b'8' | b'A' => b"19",
        b'3' => b"123459",
        b'6' | b'7' => b"129",
        b'9' => b"123",
        b'Y' => b"1",
        _ => b"",
    }
}

fn uscc_value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&x| x == c).map(|i| i as u32)
}

/// The fast path's verdict on *code* (see node/identity/uscc_fast.py).
#[pyfunction]
fn uscc_verdict(code: &str) -> u8 {
    let b = code.as_bytes();
    if b.len() != 18 || !categories(b[0]).contains(&b[1]) || !b[2..8].iter().all(u8::is_ascii_digit) {
        return FALLBACK;
    }
    let mut sum31: u32 = 0;
    let mut weight: u32 = 1;
    for (i, &c) in b.iter().enumerate() {
        let Some(v) = uscc_value(c) else { return FALLBACK };
        if i == 17 {
            sum31 += v;
        } else {
            sum31 += v * weight % 31;
            weight = weight * 3 % 31;
        }
    }
    let mut sum11: u32 = 0;
    for (j, &c) in b[8..16].iter().enumerate() {
        let idx = if c.is_ascii_digit() { (c - b'0') as u32 } else { (c - b'A') as u32 + 10 };
        sum11 += idx * ORG_WEIGHTS[j] % 11;
    }
    let check = match b[16] {
        b'X' => Some(10),
        c if c.is_ascii_digit() => Some((c - b'0') as u32),
        _ => None,
    };
    let final_ok = sum31 % 31 == 0;
    let org_ok = check.map_or(false, |c| (sum11 + c) % 11 == 0);
    if final_ok && org_ok {
        return BOTH_OK;
    }
    if code.ends_with("000") {
        return FALLBACK;
    }
    if org_ok {
        ORG_ONLY
    } else if final_ok {
        FINAL_ONLY
    } else {
        NEITHER
    }
}

#[pymodule]
fn creditnode_rust(_py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(frontier_extend, m)?)?;
    m.add_function(wrap_pyfunction!(uscc_verdict, m)?)?;
    Ok(())
}
