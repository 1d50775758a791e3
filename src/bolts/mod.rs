//! Built-in bolts, one module each.

pub mod chaos;
pub mod count;
pub mod hashtags;
pub mod key_field;
pub mod rank;
pub mod ranking_value;
pub mod rolling_count;
pub mod tokenize;
pub mod total_rank;
pub mod window_mark;

use crate::registry::Registry;

pub fn register(r: &mut Registry) {
    r.register_bolt::<tokenize::TokenizeConfig>();
    r.register_bolt::<hashtags::HashtagsConfig>();
    r.register_bolt::<count::CountConfig>();
    r.register_bolt::<rolling_count::RollingCountConfig>();
    r.register_bolt::<rank::RankConfig>();
    r.register_bolt::<total_rank::TotalRankConfig>();
    r.register_bolt::<chaos::ChaosConfig>();
}
