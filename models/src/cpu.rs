//! CPU features: what the binary was compiled to use versus what the processor offers.
//!
//! candle selects its SIMD kernels with `cfg(target_feature)` at compile time, so a binary built
//! for generic x86-64 runs the LLM 3-5x slower even on an AVX-512 machine. We log both sets at
//! start-up so an operator sees at once when a build does not use the hardware.

/// The SIMD level of this build and of this CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimdReport {
    /// Features enabled at compile time (what candle's kernels will use).
    pub compiled: Vec<&'static str>,
    /// Features the running CPU supports.
    pub available: Vec<&'static str>,
}

impl SimdReport {
    /// Features the CPU has that the build does not use: non-empty means a rebuild with
    /// `-C target-cpu=native` would be faster.
    pub fn unused(&self) -> Vec<&'static str> {
        self.available
            .iter()
            .filter(|f| !self.compiled.contains(f))
            .copied()
            .collect()
    }
}

impl std::fmt::Display for SimdReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[&str]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(",")
            }
        };
        write!(
            f,
            "compiled with [{}], cpu has [{}]",
            list(&self.compiled),
            list(&self.available)
        )
    }
}

/// Reports the SIMD features relevant to candle's CPU kernels.
pub fn simd_report() -> SimdReport {
    #[allow(unused_mut)]
    let mut compiled = Vec::new();
    #[allow(unused_mut)]
    let mut available = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if cfg!(target_feature = $f) { compiled.push($f); }
                if std::arch::is_x86_feature_detected!($f) { available.push($f); }
            )*};
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vnni",
            "avx512bf16"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        if cfg!(target_feature = "neon") {
            compiled.push("neon");
        }
        if std::arch::is_aarch64_feature_detected!("neon") {
            available.push("neon");
        }
    }
    SimdReport {
        compiled,
        available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_features_are_available() {
        // A binary cannot run instructions the CPU lacks; if this failed, the build and the
        // machine disagree and the probe itself is wrong.
        let r = simd_report();
        for f in &r.compiled {
            assert!(
                r.available.contains(f),
                "{f} compiled but not detected: {r}"
            );
        }
    }
}
