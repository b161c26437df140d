//! The example data set compiled into the binary, so `intent pipeline` runs anywhere with no
//! arguments. Source files: `data/intents/*.json` and `data/outcomes/*.json` in this crate
//! (`crates/intent-cli/data/`), so the crate builds from its package.

use std::path::Path;

/// Intents files: (file name, content).
pub const INTENTS: &[(&str, &str)] = &[
    ("book_recommendation.json", include_str!("../data/intents/book_recommendation.json")),
    ("cancel_order.json", include_str!("../data/intents/cancel_order.json")),
    ("complaint.json", include_str!("../data/intents/complaint.json")),
    ("gift_card.json", include_str!("../data/intents/gift_card.json")),
    ("goodbye.json", include_str!("../data/intents/goodbye.json")),
    ("greeting.json", include_str!("../data/intents/greeting.json")),
    ("human_agent.json", include_str!("../data/intents/human_agent.json")),
    ("order_status.json", include_str!("../data/intents/order_status.json")),
    ("payment_methods.json", include_str!("../data/intents/payment_methods.json")),
    ("reset_password.json", include_str!("../data/intents/reset_password.json")),
    ("return_item.json", include_str!("../data/intents/return_item.json")),
    ("shipping_time.json", include_str!("../data/intents/shipping_time.json")),
    ("store_hours.json", include_str!("../data/intents/store_hours.json")),
    ("thanks.json", include_str!("../data/intents/thanks.json")),
    ("update_address.json", include_str!("../data/intents/update_address.json")),
];

/// Outcome definitions: (file name, content).
pub const OUTCOMES: &[(&str, &str)] = &[
    ("book_recommendation.json", include_str!("../data/outcomes/book_recommendation.json")),
    ("cancel_order.json", include_str!("../data/outcomes/cancel_order.json")),
    ("gift_card.json", include_str!("../data/outcomes/gift_card.json")),
    ("order_status.json", include_str!("../data/outcomes/order_status.json")),
    ("reset_password.json", include_str!("../data/outcomes/reset_password.json")),
    ("return_item.json", include_str!("../data/outcomes/return_item.json")),
];

/// Writes the embedded files into `dir/intents/` and `dir/outcomes/`.
pub fn write_to(dir: &Path) -> std::io::Result<()> {
    for (sub, files) in [("intents", INTENTS), ("outcomes", OUTCOMES)] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        for (name, content) in files {
            std::fs::write(d.join(name), content)?;
        }
    }
    Ok(())
}
