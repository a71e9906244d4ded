//! One instance as a command that changes it holds it: the pin dir, the
//! lock the command took, and the maps it reads and writes, opened once and
//! passed down (apply, confirm, rollback).
use super::maps::{open_conntrack, open_rule_stats, Maps, TypedMap};
use super::pins::{PinDir, PinLock};
use super::repair::repair_maps;
use super::Result;

/// An instance opened for change, under its lock.
#[derive(Debug)]
pub struct Instance<'l> {
    pub pins: PinDir,
    lock: &'l PinLock,
    /// The policy sets, policy_outer and runtime.
    pub maps: Maps,
    /// Per-rule counters, zeroed for the rules each apply swaps in.
    pub rule_stats: TypedMap,
    /// Sized when the datapath is loaded; an apply only reads its size.
    pub conntrack: TypedMap,
}

impl<'l> Instance<'l> {
    /// Opens the maps of the instance at `pins`, whose lock the caller holds.
    pub fn open(pins: &PinDir, lock: &'l PinLock) -> Result<Self> {
        Ok(Instance {
            pins: pins.clone(),
            lock,
            maps: Maps::open(pins)?,
            rule_stats: open_rule_stats(pins)?,
            conntrack: open_conntrack(pins)?,
        })
    }

    /// The lock this instance is opened under.
    pub fn lock(&self) -> &'l PinLock {
        self.lock
    }

    /// Repairs what an interrupted apply left behind (see repair.rs);
    /// every mutating command does this before it changes anything.
    pub fn repair(&mut self) -> Result<()> {
        repair_maps(&mut self.maps, &self.pins)
    }
}
