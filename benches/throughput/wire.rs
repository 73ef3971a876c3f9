//! The client: commands packed from templates, replies framed in place (RESP2).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use crate::templates::*;

pub fn push_num(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

pub fn enc_arg(buf: &mut Vec<u8>, a: &[u8]) {
    buf.push(b'$');
    push_num(buf, a.len() as u64);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(a);
    buf.extend_from_slice(b"\r\n");
}

/// One argument of a command template: a literal, or a hole filled per call.
#[derive(Clone, Copy)]
pub enum A<'a> {
    L(&'a [u8]),
    H,
}

/// A command with its literal arguments packed once; the holes are keys.
pub struct Tpl {
    pub segs: Vec<Vec<u8>>,
}

impl Tpl {
    pub fn new(args: &[A]) -> Tpl {
        let mut first = vec![b'*'];
        push_num(&mut first, args.len() as u64);
        first.extend_from_slice(b"\r\n");
        let mut segs = vec![first];
        for a in args {
            match a {
                A::L(b) => enc_arg(segs.last_mut().expect("a segment"), b),
                A::H => segs.push(Vec::new()),
            }
        }
        Tpl { segs }
    }
    /// The arguments of `pre`, then every field name and value.
    pub fn with_fields(pre: &[A], fields: &Fields) -> Tpl {
        let mut args: Vec<A> = pre.to_vec();
        for (f, v) in fields {
            args.push(A::L(f));
            args.push(A::L(v));
        }
        Tpl::new(&args)
    }
    pub fn put(&self, buf: &mut Vec<u8>, holes: &[&[u8]]) {
        debug_assert_eq!(holes.len() + 1, self.segs.len());
        buf.extend_from_slice(&self.segs[0]);
        for (h, seg) in holes.iter().zip(&self.segs[1..]) {
            enc_arg(buf, h);
            buf.extend_from_slice(seg);
        }
    }
}

/// A connection: commands are queued, then `flush` sends them in one write
/// and reads exactly as many replies.
pub struct Conn {
    pub s: UnixStream,
    pub out: Vec<u8>,
    pub n: usize,
    pub inb: Vec<u8>,
}

impl Conn {
    pub fn new(s: UnixStream) -> Conn {
        Conn {
            s,
            out: Vec::with_capacity(16 * 1024),
            n: 0,
            inb: Vec::with_capacity(16 * 1024),
        }
    }
    pub fn add(&mut self, t: &Tpl, holes: &[&[u8]]) {
        t.put(&mut self.out, holes);
        self.n += 1;
    }
    pub fn raw(&mut self, args: &[&[u8]]) {
        self.out.push(b'*');
        push_num(&mut self.out, args.len() as u64);
        self.out.extend_from_slice(b"\r\n");
        for a in args {
            enc_arg(&mut self.out, a);
        }
        self.n += 1;
    }
    pub fn flush(&mut self) -> Replies {
        self.s.write_all(&self.out).expect("write to redis-server");
        self.out.clear();
        let mut ends = Vec::with_capacity(self.n);
        let mut pos = 0;
        let mut chunk = [0u8; 16 * 1024];
        while ends.len() < self.n {
            match resp_end(&self.inb, pos) {
                Some(end) => {
                    ends.push(end);
                    pos = end;
                }
                None => {
                    let got = self.s.read(&mut chunk).expect("read from redis-server");
                    assert!(got > 0, "redis-server closed the connection");
                    self.inb.extend_from_slice(&chunk[..got]);
                }
            }
        }
        self.n = 0;
        let cap = self.inb.capacity();
        Replies {
            buf: std::mem::replace(&mut self.inb, Vec::with_capacity(cap)),
            ends,
        }
    }
    pub fn cmd(&mut self, args: &[&[u8]]) -> Replies {
        self.raw(args);
        self.flush()
    }
}

/// Where the RESP value starting at `pos` ends, or None while `buf` does not
/// hold all of it.
pub fn resp_end(buf: &[u8], pos: usize) -> Option<usize> {
    let nl = pos + buf.get(pos..)?.iter().position(|&b| b == b'\n')?;
    let next = nl + 1;
    let n = || parse_int(buf.get(pos + 1..nl - 1).unwrap_or_default());
    match buf[pos] {
        b'$' if n() >= 0 => {
            let end = next + n() as usize + 2;
            (end <= buf.len()).then_some(end)
        }
        b'*' => (0..n().max(0)).try_fold(next, |p, _| resp_end(buf, p)),
        b'+' | b'-' | b':' | b'$' => Some(next),
        t => panic!("unexpected RESP type byte {:?}", t as char),
    }
}

pub fn parse_int(b: &[u8]) -> i64 {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let v = digits
        .iter()
        .fold(0i64, |v, d| v * 10 + i64::from(d.wrapping_sub(b'0')));
    if neg {
        -v
    } else {
        v
    }
}

/// The replies to one flush.
pub struct Replies {
    pub buf: Vec<u8>,
    pub ends: Vec<usize>,
}

impl Replies {
    pub fn get(&self, i: usize) -> Reply<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Reply(&self.buf[start..self.ends[i]])
    }
    pub fn iter(&self) -> impl Iterator<Item = Reply<'_>> {
        (0..self.ends.len()).map(|i| self.get(i))
    }
}

/// One reply, as its RESP bytes.
#[derive(Clone, Copy)]
pub struct Reply<'a>(pub &'a [u8]);

impl<'a> Reply<'a> {
    pub fn head(&self) -> &'a [u8] {
        let nl = self.0.iter().position(|&b| b == b'\n').unwrap_or(1);
        self.0.get(1..nl.saturating_sub(1)).unwrap_or_default()
    }
    pub fn is_ok(&self) -> bool {
        self.0 == b"+OK\r\n"
    }
    pub fn is_err(&self) -> bool {
        self.0.first() == Some(&b'-')
    }
    pub fn int(&self) -> Option<i64> {
        (self.0.first() == Some(&b':')).then(|| parse_int(self.head()))
    }
    /// The elements of an array (None for anything else).
    pub fn items(&self) -> Option<Vec<Reply<'a>>> {
        if self.0.first() != Some(&b'*') {
            return None;
        }
        let mut out = Vec::new();
        let mut p = self.head().len() + 3;
        for _ in 0..parse_int(self.head()).max(0) {
            let end = resp_end(self.0, p)?;
            out.push(Reply(&self.0[p..end]));
            p = end;
        }
        Some(out)
    }
    pub fn array_len(&self) -> Option<i64> {
        (self.0.first() == Some(&b'*')).then(|| parse_int(self.head()))
    }
    /// A bulk string's bytes, or a status, error or integer line.
    pub fn text(&self) -> &'a [u8] {
        match self.0.first() {
            Some(b'$') => {
                let h = self.head().len() + 3;
                self.0.get(h..self.0.len() - 2).unwrap_or_default()
            }
            _ => self.head(),
        }
    }
}

impl std::fmt::Debug for Reply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = String::from_utf8_lossy(&self.0[..self.0.len().min(160)]);
        write!(f, "{:?}", s.replace("\r\n", " "))
    }
}

pub fn is_ok(r: Reply) -> bool {
    r.is_ok()
}
pub fn is_int(r: Reply) -> bool {
    r.int().is_some()
}
pub fn is_one(r: Reply) -> bool {
    r.int() == Some(1)
}
pub fn not_err(r: Reply) -> bool {
    !r.is_err()
}
/// A non-empty array: a record's fields, or a rate-limit verdict.
pub fn is_array(r: Reply) -> bool {
    r.array_len().is_some_and(|n| n > 0)
}
/// An allowed rate-limit verdict `[0, limit, remaining, ...]`.
pub fn is_allowed(r: Reply) -> bool {
    let first = r.head().len() + 3;
    r.array_len().is_some_and(|n| n >= 5) && r.0[first..].starts_with(b":0\r\n")
}

/// The key `prefix:a:b`, written into a scratch buffer.
pub fn key<'b>(buf: &'b mut Vec<u8>, prefix: &[u8], a: u64, b: u64) -> &'b [u8] {
    buf.clear();
    buf.extend_from_slice(prefix);
    buf.push(b':');
    push_num(buf, a);
    buf.push(b':');
    push_num(buf, b);
    buf
}

/// xorshift64: random keys without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn seeded(a: u64) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (a.wrapping_add(1).wrapping_mul(0x2545_F491_4F6C_DD1D)))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
