//! What a pass through a kernel's hot loop costs the shared-memory pipe of a streaming
//! multiprocessor, besides the instructions it issues (`super::hot_loop`): on the H100 an SM
//! issues four warp instructions a cycle (one per scheduler, 128 fp32 lanes) but moves 128
//! bytes a cycle to or from workgroup memory, one 32-bit register for each lane of a warp.
//! A loop that reads a vec4 per four multiply-adds in every lane is therefore bound by that
//! pipe, not by its issue slots, whatever its instruction count says.
//!
//! The addresses each workgroup access of the loop takes in each invocation of a workgroup
//! are computed from the SPIR-V itself: its integer arithmetic evaluated for each
//! invocation's built-in ids (workgroup 0), loop variables at their first pass, pipeline
//! constants as naga substituted them. The cost of one warp's access follows NVIDIA's
//! published rules (CUDA C Programming Guide, "Shared Memory" of compute capability 5.x and
//! later; NVIDIA's forum on `LDS.128`, thread 77228):
//! - 32 banks of 4-byte words; the words one access touches in a bank, counted once each
//!   (lanes reading the same word share it), take a cycle each: a bank conflict;
//! - at least one cycle per 32-bit register each lane gets (the pipe returns 128 bytes a
//!   cycle): 2 for a vec2, 4 for a vec4, whatever the addresses;
//! - halved for loads whose lanes share addresses in pairs (lanes n and n ^ 1 alike, or n and
//!   n ^ 2 alike), whose registers the pipe packs two to a cycle.
//!
//! Not modelled: lanes a branch leaves idle (every lane is taken to access), later passes'
//! addresses (the first pass is taken for all), and vec3 or struct layouts (the kernels keep
//! none in workgroup memory).

use std::collections::HashMap;
use std::ops::Range;

use super::{Module, op};

/// SPIR-V's execution mode LocalSize and decoration BuiltIn.
const LOCAL_SIZE: u32 = 17;
const BUILT_IN: u32 = 11;

/// Built-in ids an address may use (SPIR-V's BuiltIn enumerants).
mod builtin {
    pub const WORKGROUP_ID: u32 = 26;
    pub const LOCAL_INVOCATION_ID: u32 = 27;
    pub const GLOBAL_INVOCATION_ID: u32 = 28;
    pub const LOCAL_INVOCATION_INDEX: u32 = 29;
    pub const SUBGROUP_SIZE: u32 = 36;
    pub const SUBGROUP_ID: u32 = 40;
    pub const SUBGROUP_LOCAL_INVOCATION_ID: u32 = 41;
}

/// GLSL.std.450's integer minimum, maximum and clamp.
const EXT_UMIN: u32 = 38;
const EXT_SMIN: u32 = 39;
const EXT_UMAX: u32 = 41;
const EXT_SMAX: u32 = 42;
const EXT_UCLAMP: u32 = 44;
const EXT_SCLAMP: u32 = 45;

/// Storage class Function (registers, before variables are promoted).
const FUNCTION: u32 = 7;

/// Lanes of a warp (an NVIDIA subgroup) and banks of workgroup memory.
const WARP: usize = 32;
const BANKS: u64 = 32;

/// One workgroup access of the hot loop, in the loop's order.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    /// Bytes each invocation moves.
    pub bytes: u64,
    /// A load (else a store).
    pub load: bool,
    /// Its cycles and conflict-free cycles per warp (mean over the workgroup's warps);
    /// `None` where its address is unresolved.
    pub cycles: Option<(f64, f64)>,
}

/// What a pass through the hot loop costs the shared-memory pipe, per warp.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Banks {
    /// Workgroup loads and stores in the loop.
    pub accesses: u32,
    /// Cycles of the SM's shared-memory pipe one warp's pass takes: the sum over the
    /// accesses, each the mean over the workgroup's warps.
    pub cycles: f64,
    /// The same without bank conflicts: the registers each lane moves, halved for loads
    /// shared by lane pairs. `cycles - floor` is what conflicts cost.
    pub floor: f64,
    /// Accesses whose addresses depend on something only the run knows (a uniform, a
    /// storage buffer), left out of `cycles` and `floor`.
    pub unresolved: u32,
    /// Each access: what the sums above add up, for finding the conflicting ones.
    pub each: Vec<Access>,
}

/// What a pass through the hot loop of SPIR-V module `words` (the loop `super::hot_loop`
/// counts) costs the shared-memory pipe; `None` without loops.
pub fn hot_loop_banks(words: &[u32]) -> Option<Banks> {
    let m = Module::decode(words);
    let (_, ranges) = m.hot_ranges()?;
    Some(Addresses::new(&m).banks(&ranges))
}

/// A type as far as addresses need it.
#[derive(Clone, Debug)]
enum Ty {
    /// A scalar of so many bytes.
    Scalar(u64),
    /// Component type, components.
    Vector(u32, u64),
    /// Element type, length.
    Array(u32, u64),
    /// Member types, in order.
    Struct(Vec<u32>),
    /// The type pointed to.
    Pointer(u32),
}

/// The module indexed for evaluating integer expressions per invocation.
struct Addresses<'m, 'a> {
    m: &'m Module<'a>,
    /// Result id -> the instruction defining it.
    def: HashMap<u32, usize>,
    /// Instruction -> the label of its block.
    block: Vec<u32>,
    /// Loop header label -> its continue target.
    continue_of: HashMap<u32, u32>,
    /// Input variable -> its built-in.
    builtin: HashMap<u32, u32>,
    /// Function variable -> the first value stored to it.
    first_store: HashMap<u32, u32>,
    types: HashMap<u32, Ty>,
    /// Integer constants (booleans as 0 or 1), by lanes.
    constants: HashMap<u32, Vec<u32>>,
    /// The workgroup's size.
    size: [u32; 3],
}

/// Values of ids for one invocation, as lanes of 32-bit words; `None` for what the
/// evaluation cannot know.
type Memo = HashMap<u32, Option<Vec<u32>>>;

impl<'m, 'a> Addresses<'m, 'a> {
    fn new(m: &'m Module<'a>) -> Self {
        let mut a = Addresses {
            m,
            def: HashMap::new(),
            block: Vec::with_capacity(m.insts.len()),
            continue_of: HashMap::new(),
            builtin: HashMap::new(),
            first_store: HashMap::new(),
            types: HashMap::new(),
            constants: HashMap::new(),
            size: [1, 1, 1],
        };
        let mut label = 0;
        for (k, inst) in m.insts.iter().enumerate() {
            let w = inst.w;
            match inst.op {
                op::LABEL => label = w[0],
                op::LOOP_MERGE => {
                    a.continue_of.insert(label, w[1]);
                }
                op::STORE => {
                    a.first_store.entry(w[0]).or_insert(w[1]);
                }
                op::EXECUTION_MODE if w.get(1) == Some(&LOCAL_SIZE) && w.len() >= 5 => {
                    a.size = [w[2], w[3], w[4]];
                }
                op::DECORATE if w.get(1) == Some(&BUILT_IN) && w.len() >= 3 => {
                    a.builtin.insert(w[0], w[2]);
                }
                op::TYPE_BOOL => {
                    a.types.insert(w[0], Ty::Scalar(4));
                }
                op::TYPE_INT | op::TYPE_FLOAT => {
                    a.types.insert(w[0], Ty::Scalar(u64::from(w[1] / 8)));
                }
                op::TYPE_VECTOR => {
                    a.types.insert(w[0], Ty::Vector(w[1], u64::from(w[2])));
                }
                op::TYPE_ARRAY => {
                    let len = a.constants.get(&w[2]).map_or(0, |v| u64::from(v[0]));
                    a.types.insert(w[0], Ty::Array(w[1], len));
                }
                op::TYPE_STRUCT => {
                    a.types.insert(w[0], Ty::Struct(w[1..].to_vec()));
                }
                op::TYPE_POINTER => {
                    a.types.insert(w[0], Ty::Pointer(w[2]));
                }
                op::CONSTANT => {
                    a.constants.insert(w[1], vec![w[2]]);
                }
                op::CONSTANT_TRUE | op::CONSTANT_FALSE => {
                    a.constants
                        .insert(w[1], vec![u32::from(inst.op == op::CONSTANT_TRUE)]);
                }
                op::CONSTANT_COMPOSITE => {
                    let lanes: Option<Vec<u32>> = w[2..]
                        .iter()
                        .map(|c| a.constants.get(c).and_then(|v| v.first().copied()))
                        .collect();
                    if let Some(lanes) = lanes {
                        a.constants.insert(w[1], lanes);
                    }
                }
                op::CONSTANT_NULL => {
                    let lanes = m.lanes.get(&w[0]).copied().unwrap_or(1) as usize;
                    a.constants.insert(w[1], vec![0; lanes]);
                }
                _ => {}
            }
            if super::has_result(inst.op) && w.len() >= 2 {
                a.def.insert(w[1], k);
            }
            a.block.push(label);
        }
        a
    }

    /// Bytes of type `t` in workgroup memory (natural layout; vec3 padded to 16).
    fn bytes(&self, t: u32) -> u64 {
        match self.types.get(&t) {
            Some(Ty::Scalar(b)) => *b,
            Some(Ty::Vector(c, n)) => self.bytes(*c) * if *n == 3 { 4 } else { *n },
            Some(Ty::Array(e, len)) => self.bytes(*e) * len,
            Some(Ty::Struct(members)) => members.iter().map(|&x| self.bytes(x)).sum(),
            _ => 0,
        }
    }

    /// The value of built-in `b` in invocation `lane` of workgroup 0.
    fn builtin_value(&self, b: u32, lane: u32) -> Option<Vec<u32>> {
        let [x, y, _] = self.size;
        let local = vec![lane % x, (lane / x) % y, lane / (x * y)];
        match b {
            builtin::LOCAL_INVOCATION_INDEX => Some(vec![lane]),
            builtin::LOCAL_INVOCATION_ID | builtin::GLOBAL_INVOCATION_ID => Some(local),
            builtin::WORKGROUP_ID => Some(vec![0, 0, 0]),
            builtin::SUBGROUP_LOCAL_INVOCATION_ID => Some(vec![lane % WARP as u32]),
            builtin::SUBGROUP_ID => Some(vec![lane / WARP as u32]),
            builtin::SUBGROUP_SIZE => Some(vec![WARP as u32]),
            _ => None,
        }
    }

    /// The value of `id` in invocation `lane`, loop variables at their first pass.
    fn value(&self, id: u32, lane: u32, memo: &mut Memo, depth: usize) -> Option<Vec<u32>> {
        if let Some(v) = self.constants.get(&id) {
            return Some(v.clone());
        }
        if let Some(v) = memo.get(&id) {
            return v.clone();
        }
        if depth > 512 {
            return None;
        }
        // Provisional: a cycle through a phi reads as unknown.
        memo.insert(id, None);
        let v = self.compute(id, lane, memo, depth + 1);
        memo.insert(id, v.clone());
        v
    }

    fn compute(&self, id: u32, lane: u32, memo: &mut Memo, depth: usize) -> Option<Vec<u32>> {
        let k = *self.def.get(&id)?;
        let inst = &self.m.insts[k];
        let w = inst.w;
        let arg = |i: usize, memo: &mut Memo| -> Option<Vec<u32>> {
            self.value(*w.get(i)?, lane, memo, depth)
        };
        match inst.op {
            op::LOAD => {
                if let Some(b) = self.builtin.get(&w[2]) {
                    return self.builtin_value(*b, lane);
                }
                // A function variable (unoptimized SPIR-V) at its first pass: its
                // initializer, else the first value stored to it.
                let var = &self.m.insts[*self.def.get(&w[2])?];
                if var.op != op::VARIABLE || var.w[2] != FUNCTION {
                    return None;
                }
                let first = match var.w.get(3) {
                    Some(&init) => init,
                    None => self.first_store.get(&w[2]).copied()?,
                };
                self.value(first, lane, memo, depth)
            }
            op::COPY_OBJECT | op::BITCAST | op::U_CONVERT | op::S_CONVERT => arg(2, memo),
            op::COMPOSITE_EXTRACT => {
                let mut v = arg(2, memo)?;
                for &i in &w[3..] {
                    v = vec![*v.get(i as usize)?];
                }
                Some(v)
            }
            op::COMPOSITE_CONSTRUCT => {
                let mut out = Vec::new();
                for i in 2..w.len() {
                    out.extend(arg(i, memo)?);
                }
                Some(out)
            }
            op::VECTOR_SHUFFLE => {
                let (x, y) = (arg(2, memo)?, arg(3, memo)?);
                w[4..]
                    .iter()
                    .map(|&s| {
                        let s = s as usize;
                        if s < x.len() {
                            Some(x[s])
                        } else {
                            y.get(s - x.len()).copied()
                        }
                    })
                    .collect()
            }
            op::PHI => {
                // At a loop's header the value from outside the loop (its first pass);
                // elsewhere the incoming values if they agree.
                let cont = self.continue_of.get(&self.block[k]);
                let mut found: Option<Vec<u32>> = None;
                for pair in w[2..].chunks_exact(2) {
                    if Some(&pair[1]) == cont {
                        continue;
                    }
                    let v = self.value(pair[0], lane, memo, depth)?;
                    match &found {
                        Some(f) if *f != v => return None,
                        _ => found = Some(v),
                    }
                }
                found
            }
            op::EXT_INST => {
                let f = |i: usize, memo: &mut Memo| arg(i, memo);
                let x = f(4, memo)?;
                let y = if w.len() > 5 { f(5, memo)? } else { x.clone() };
                let z = if w.len() > 6 { f(6, memo)? } else { x.clone() };
                let s = |v: u32| v as i32;
                let lanes = x.len();
                let get = |v: &Vec<u32>, i: usize| v[i.min(v.len() - 1)];
                (0..lanes)
                    .map(|i| {
                        let (a, b, c) = (get(&x, i), get(&y, i), get(&z, i));
                        Some(match w[3] {
                            EXT_UMIN => a.min(b),
                            EXT_UMAX => a.max(b),
                            EXT_SMIN => s(a).min(s(b)) as u32,
                            EXT_SMAX => s(a).max(s(b)) as u32,
                            EXT_UCLAMP => a.max(b).min(c),
                            EXT_SCLAMP => s(a).max(s(b)).min(s(c)) as u32,
                            _ => return None,
                        })
                    })
                    .collect()
            }
            op::SELECT => {
                // Condition, then, else, lane by lane.
                let (c, t, e) = (arg(2, memo)?, arg(3, memo)?, arg(4, memo)?);
                Some(
                    (0..t.len())
                        .map(|i| {
                            if c[i.min(c.len() - 1)] != 0 {
                                t[i]
                            } else {
                                e[i]
                            }
                        })
                        .collect(),
                )
            }
            op::S_NEGATE | op::LOGICAL_NOT | op::NOT => {
                let x = arg(2, memo)?;
                Some(
                    x.iter()
                        .map(|&a| match inst.op {
                            op::S_NEGATE => (a as i32).wrapping_neg() as u32,
                            op::LOGICAL_NOT => u32::from(a == 0),
                            _ => !a,
                        })
                        .collect(),
                )
            }
            128..=139 | 164..=167 | 170..=179 | 194..=199 => {
                let (x, y) = (arg(2, memo)?, arg(3, memo)?);
                (0..x.len().max(y.len()))
                    .map(|i| binary(inst.op, x[i.min(x.len() - 1)], y[i.min(y.len() - 1)]))
                    .collect()
            }
            _ => None,
        }
    }

    /// The byte offset pointer `ptr` of a workgroup variable takes in invocation `lane`, and
    /// the variable it points into.
    fn offset(&self, ptr: u32, lane: u32, memo: &mut Memo) -> Option<(u32, u64)> {
        let k = *self.def.get(&ptr)?;
        let inst = &self.m.insts[k];
        let w = inst.w;
        match inst.op {
            op::VARIABLE => Some((ptr, 0)),
            op::ACCESS_CHAIN | op::IN_BOUNDS_ACCESS_CHAIN => {
                let (var, mut at) = self.offset(w[2], lane, memo)?;
                let mut t = match self.types.get(self.m.result_type.get(&w[2])?) {
                    Some(Ty::Pointer(p)) => *p,
                    _ => return None,
                };
                for &index in &w[3..] {
                    let i = u64::from(self.value(index, lane, memo, 0)?[0]);
                    t = match self.types.get(&t)? {
                        Ty::Array(e, _) => {
                            at += i * self.bytes(*e);
                            *e
                        }
                        Ty::Vector(c, _) => {
                            at += i * self.bytes(*c);
                            *c
                        }
                        Ty::Struct(members) => {
                            at += members
                                .iter()
                                .take(i as usize)
                                .map(|&x| self.bytes(x))
                                .sum::<u64>();
                            *members.get(i as usize)?
                        }
                        _ => return None,
                    };
                }
                Some((var, at))
            }
            _ => None,
        }
    }

    /// The cost of the workgroup accesses in `ranges`, one pass.
    fn banks(&self, ranges: &[Range<usize>]) -> Banks {
        let invocations = self.size.iter().product::<u32>().max(1);
        let warps = (invocations as usize).div_ceil(WARP);
        let mut out = Banks::default();
        // Each invocation's values, kept across the accesses (they read the same ids).
        let mut memos: Vec<Memo> = (0..invocations).map(|_| Memo::new()).collect();
        for r in ranges {
            for inst in &self.m.insts[r.clone()] {
                let (ptr, bytes, load) = match inst.op {
                    op::LOAD => (inst.w[2], self.bytes(inst.w[0]), true),
                    op::STORE => (inst.w[0], self.pointee_bytes(inst.w[0]), false),
                    _ => continue,
                };
                if self.m.class_of(ptr) != Some(super::WORKGROUP) {
                    continue;
                }
                out.accesses += 1;
                let mut cost = Some((0.0, 0.0));
                for warp in 0..warps {
                    let lanes = warp * WARP..((warp + 1) * WARP).min(invocations as usize);
                    let at: Option<Vec<u64>> = lanes
                        .map(|lane| {
                            self.offset(ptr, lane as u32, &mut memos[lane])
                                .map(|(_, at)| at)
                        })
                        .collect();
                    cost = match (cost, at) {
                        (Some((c, f)), Some(at)) => {
                            let (wc, wf) = warp_cycles(&at, bytes, load);
                            Some((c + wc / warps as f64, f + wf / warps as f64))
                        }
                        _ => None,
                    };
                }
                match cost {
                    Some((c, f)) => {
                        out.cycles += c;
                        out.floor += f;
                    }
                    None => out.unresolved += 1,
                }
                out.each.push(Access {
                    bytes,
                    load,
                    cycles: cost,
                });
            }
        }
        out
    }

    fn pointee_bytes(&self, ptr: u32) -> u64 {
        match self.m.result_type.get(&ptr).and_then(|t| self.types.get(t)) {
            Some(Ty::Pointer(p)) => self.bytes(*p),
            _ => 0,
        }
    }
}

/// Binary integer and logical operation `op` (SPIR-V opcode) on 32-bit lanes; `None` for a
/// division by zero.
fn binary(op: u32, a: u32, b: u32) -> Option<u32> {
    let (sa, sb) = (a as i32, b as i32);
    Some(match op {
        128 => a.wrapping_add(b),          // IAdd
        130 => a.wrapping_sub(b),          // ISub
        132 => a.wrapping_mul(b),          // IMul
        134 => a.checked_div(b)?,          // UDiv
        135 => sa.checked_div(sb)? as u32, // SDiv
        137 => a.checked_rem(b)?,          // UMod
        138 => sa.checked_rem(sb)? as u32, // SRem: the dividend's sign
        139 => {
            // SMod: the divisor's sign.
            let r = sa.checked_rem(sb)?;
            (if r != 0 && (r < 0) != (sb < 0) {
                r + sb
            } else {
                r
            }) as u32
        }
        164 | 170 => u32::from(a == b),       // LogicalEqual, IEqual
        165 | 171 => u32::from(a != b),       // LogicalNotEqual, INotEqual
        166 => u32::from(a != 0 || b != 0),   // LogicalOr
        167 => u32::from(a != 0 && b != 0),   // LogicalAnd
        172 => u32::from(a > b),              // UGreaterThan
        173 => u32::from(sa > sb),            // SGreaterThan
        174 => u32::from(a >= b),             // UGreaterThanEqual
        175 => u32::from(sa >= sb),           // SGreaterThanEqual
        176 => u32::from(a < b),              // ULessThan
        177 => u32::from(sa < sb),            // SLessThan
        178 => u32::from(a <= b),             // ULessThanEqual
        179 => u32::from(sa <= sb),           // SLessThanEqual
        194 => a.checked_shr(b).unwrap_or(0), // ShiftRightLogical
        195 => sa.checked_shr(b).unwrap_or(sa >> 31) as u32, // ShiftRightArithmetic
        196 => a.checked_shl(b).unwrap_or(0), // ShiftLeftLogical
        197 => a | b,                         // BitwiseOr
        198 => a ^ b,                         // BitwiseXor
        199 => a & b,                         // BitwiseAnd
        _ => return None,
    })
}

/// Cycles one warp's access of `bytes` per lane at byte offsets `at` takes the
/// shared-memory pipe, and the same without its bank conflicts.
fn warp_cycles(at: &[u64], bytes: u64, load: bool) -> (f64, f64) {
    let regs = bytes.div_ceil(4).max(1);
    let paired = |step: usize| (0..at.len()).all(|i| at.get(i ^ step).is_none_or(|&o| o == at[i]));
    let pack = if load && regs > 1 && (paired(1) || paired(2)) {
        2
    } else {
        1
    };
    let floor = (regs / pack).max(1);
    let mut words: HashMap<u64, Vec<u64>> = HashMap::new();
    for &a in at {
        for r in 0..regs {
            let word = a / 4 + r;
            let bank = words.entry(word % BANKS).or_default();
            if !bank.contains(&word) {
                bank.push(word);
            }
        }
    }
    let conflicts = words.values().map(|v| v.len() as u64).max().unwrap_or(1);
    (floor.max(conflicts) as f64, floor as f64)
}

#[cfg(test)]
mod tests {
    use super::{binary, hot_loop_banks, warp_cycles};
    use crate::backend::wgpu::instructions::{Checks, spirv};

    #[test]
    fn integer_operations_follow_spirv() {
        let m7 = (-7i32) as u32;
        // SRem takes the dividend's sign, SMod the divisor's; UDiv by zero is unknown.
        assert_eq!(binary(138, m7, 3), Some((-1i32) as u32));
        assert_eq!(binary(139, m7, 3), Some(2));
        assert_eq!(binary(139, 7, (-3i32) as u32), Some((-2i32) as u32));
        assert_eq!(binary(134, 1, 0), None);
        // Arithmetic shifts keep the sign, also by 32 or more.
        assert_eq!(binary(195, m7, 1), Some((-4i32) as u32));
        assert_eq!(binary(195, m7, 40), Some(u32::MAX));
        assert_eq!(binary(194, m7, 40), Some(0));
    }

    #[test]
    fn a_warp_pays_per_register_per_conflict_and_half_for_pairs() {
        let lanes = |f: &dyn Fn(u64) -> u64| (0..32).map(f).collect::<Vec<u64>>();
        // 32 consecutive floats: one cycle; every lane one float: one (a broadcast).
        assert_eq!(warp_cycles(&lanes(&|l| 4 * l), 4, true), (1.0, 1.0));
        assert_eq!(warp_cycles(&lanes(&|_| 0), 4, true), (1.0, 1.0));
        // Floats 32 apart: all in one bank, 32 cycles.
        assert_eq!(warp_cycles(&lanes(&|l| 128 * l), 4, true), (32.0, 1.0));
        // 32 consecutive vec4s: four registers a lane, four cycles; 2 vec4s apart: eight.
        assert_eq!(warp_cycles(&lanes(&|l| 16 * l), 16, true), (4.0, 4.0));
        assert_eq!(warp_cycles(&lanes(&|l| 32 * l), 16, true), (8.0, 4.0));
        // Lane pairs sharing a vec4 (n and n ^ 1, or n and n ^ 2): packed, two cycles;
        // shared by lanes n and n ^ 4 only: not packed. A store is never packed.
        assert_eq!(warp_cycles(&lanes(&|l| 16 * (l / 2)), 16, true), (2.0, 2.0));
        assert_eq!(
            warp_cycles(&lanes(&|l| 16 * (l % 2 + 2 * (l / 4))), 16, true),
            (2.0, 2.0)
        );
        assert_eq!(warp_cycles(&lanes(&|l| 16 * (l % 4)), 16, true), (4.0, 4.0));
        assert_eq!(warp_cycles(&lanes(&|_| 0), 16, false), (4.0, 4.0));
    }

    /// A kernel reading, per pass of its inner loop, a vec4 per invocation (consecutive), a
    /// vec4 shared by all (broadcast), a vec4 at a stride of 2 (conflicting) and a float of
    /// a column (32-way conflict) from workgroup memory, and storing a lane of a vec4.
    const KERNEL: &str = "
        var<workgroup> ws: array<vec4<f32>, 256>;
        var<workgroup> col: array<f32, 2048>;
        @group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
        override N: u32 = 4u;
        @compute @workgroup_size(8, 8)
        fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
            let l = lid.y * 8u + lid.x;
            var acc = vec4<f32>(0.0);
            for (var k = 0u; k < N; k++) {
                let a = ws[l + k];
                let b = ws[k];
                let c = ws[2u * l];
                let d = col[32u * l + k];
                acc += a * b + c * d;
                ws[l][k & 3u] = acc.x;
            }
            out[l] = acc;
        }
    ";

    #[test]
    fn the_hot_loop_s_addresses_come_from_its_spirv() {
        for checks in [Checks::Checked, Checks::Unchecked] {
            let words = spirv(KERNEL, "main", &[("N", 8.0)], checks).expect("SPIR-V");
            let b = hot_loop_banks(&words).expect("a loop");
            assert_eq!((b.accesses, b.unresolved), (5, 0), "{checks:?}");
            // 4 + 2 (broadcast, packed) + 8 (2-way) + 32 (one bank) + 4 (a float store into
            // each of 32 vec4s: 8 banks).
            assert_eq!(b.cycles, 4.0 + 2.0 + 8.0 + 32.0 + 4.0, "{checks:?}");
            assert_eq!(b.floor, 4.0 + 2.0 + 4.0 + 1.0 + 1.0, "{checks:?}");
        }
    }

    #[test]
    fn addresses_from_a_uniform_are_unresolved() {
        let src = "
            struct P { s: u32 }
            @group(0) @binding(0) var<uniform> p: P;
            @group(0) @binding(1) var<storage, read_write> out: array<f32>;
            var<workgroup> ws: array<f32, 256>;
            @compute @workgroup_size(64)
            fn main(@builtin(local_invocation_index) l: u32) {
                var acc = 0.0;
                for (var k = 0u; k < 4u; k++) {
                    acc += ws[(l * p.s + k) & 255u] * ws[l];
                }
                out[l] = acc;
            }
        ";
        let words = spirv(src, "main", &[], Checks::Unchecked).expect("SPIR-V");
        let b = hot_loop_banks(&words).expect("a loop");
        assert_eq!((b.accesses, b.unresolved), (2, 1));
        assert_eq!(b.cycles, 1.0);
    }
}
