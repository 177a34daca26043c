// tile_update.wgsl: the cell updates that end a tiled step kernel (the `*_tiled` entry
// points of lstm_cell.wgsl, gru_cell.wgsl and elman_cell.wgsl; CPU twin: the cells' step
// loops in src/backend/cpu/). No bindings of its own: put between the step products
// (step_tiles.wgsl, step_coop.wgsl or step_gemv.wgsl) and the cell's file, which provides
//
//   struct FwdIn;  fn fwd_in(d, b, j) -> FwdIn;  fn fwd_update(d, b, j, e: FwdIn, a: vec4<f32>)
//   struct BwdIn;  fn bwd_in(d, b, j) -> BwdIn;  fn bwd_update(d, b, j, e: BwdIn, wt: f32)
//
// `*_in` reads everything the update of unit j of sequence b (a valid step) takes besides
// the products' sums, `*_update` computes and stores it: forward from the unit's lane of
// (W_hh h_{t-1}) at its gate rows (a.x, a.y, ... in gate order), backward from its lane of
// W_hh^T dgh_{t+1}.
//
// A lead invocation (tile_lead) holds the sums of unit j for the four sequences b .. b + 3
// (lanes of tile_w_h's and tile_wt_dgh's vec4s). It reads all four sequences' inputs before
// it updates any: an update's stores into the cache and the gates buffer would otherwise hold
// the next sequence's loads back (a compiler keeps a load behind a store into the same
// buffer unless it can tell their elements apart), one memory latency a sequence instead of
// one for all four (BENCHMARKS.md, entry 47).

// The forward's updates of the lead invocation l of workgroup wg, given tile_w_h's sums `a`.
fn tile_fwd_update(l: u32, wg: vec3<u32>, a: Gates4) {
    let j = wg.x * TU + l % TU;
    let b = wg.y * TB + 4u * (l / TU);
    let d = wg.z;
    let live = tile_live(j, b);
    // @unroll c 4
    var e{c} = FwdIn();
    if (live[c]) {
        e{c} = fwd_in(d, b + c, j);
    }
    // @end unroll
    // @unroll c 4
    if (live[c]) {
        fwd_update(d, b + c, j, e{c}, vec4<f32>(a.g0[c], a.g1[c], a.g2[c], a.g3[c]));
    }
    // @end unroll
}

// The backward's updates of the lead invocation l of workgroup wg, given tile_wt_dgh's
// sums `wt`.
fn tile_bwd_update(l: u32, wg: vec3<u32>, wt: vec4<f32>) {
    let j = wg.x * TU + l % TU;
    let b = wg.y * TB + 4u * (l / TU);
    let d = wg.z;
    let live = tile_live(j, b);
    // @unroll c 4
    var e{c} = BwdIn();
    if (live[c]) {
        e{c} = bwd_in(d, b + c, j);
    }
    // @end unroll
    // @unroll c 4
    if (live[c]) {
        bwd_update(d, b + c, j, e{c}, wt[c]);
    }
    // @end unroll
}
