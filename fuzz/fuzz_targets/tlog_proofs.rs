//! RFC 6962 inclusion and consistency proofs with hostile sizes, indices and proofs: verifiers
//! never panic or loop, and a proof that verifies against a real tree is the tree's own proof.
#![no_main]
use arbitrary::Arbitrary;
use fieldcap_evidence::tlog::{consistency_proof, inclusion_proof, leaf_hash, root_of, verify_consistency, verify_inclusion, Hash};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Leaves of a real tree (at most 300).
    leaves: u16,
    index: u64,
    old_size: u64,
    new_size: u64,
    proof: Vec<[u8; 32]>,
    /// Replace sizes by raw values (hostile) rather than values within the tree.
    raw: bool,
    leaf: [u8; 32],
    root: [u8; 32],
    root2: [u8; 32],
}

fuzz_target!(|i: Input| {
    let proof: Vec<Hash> = i.proof.iter().take(80).copied().collect();
    // Hostile numbers against hostile hashes: must not panic or hang.
    let _ = verify_inclusion(i.index, i.new_size, &i.leaf, &proof, &i.root);
    let _ = verify_consistency(i.old_size, i.new_size, &i.root, &i.root2, &proof);

    // A real tree.
    let n = (i.leaves % 300) as u64;
    let leaves: Vec<Hash> = (0..n).map(|k| leaf_hash(&k.to_be_bytes())).collect();
    let root = root_of(&leaves);
    if n > 0 {
        let index = if i.raw { i.index } else { i.index % n };
        match inclusion_proof(&leaves, index) {
            Ok(real) => {
                verify_inclusion(index, n, &leaves[index as usize], &real, &root).expect("the tree's own inclusion proof verifies");
                if verify_inclusion(index, n, &leaves[index as usize], &proof, &root).is_ok() {
                    assert_eq!(proof, real, "a foreign inclusion proof verified");
                }
            }
            Err(_) => assert!(index >= n, "no inclusion proof for a leaf in the tree"),
        }
    }
    let old = if i.raw { i.old_size } else { i.old_size % (n + 1) };
    match consistency_proof(&leaves, old) {
        Ok(real) => {
            let old_root = root_of(&leaves[..old as usize]);
            verify_consistency(old, n, &old_root, &root, &real).expect("the tree's own consistency proof verifies");
            if verify_consistency(old, n, &old_root, &root, &proof).is_ok() {
                assert_eq!(proof, real, "a foreign consistency proof verified");
            }
        }
        Err(_) => assert!(old > n, "no consistency proof for a size within the tree"),
    }
});
