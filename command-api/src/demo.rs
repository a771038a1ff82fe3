//! Demo data: a realistic produce catalogue, three warehouses, suppliers and
//! batches with staggered expiry dates. Loaded through the same command path
//! as everything else, so the demo history is real events.

use chrono::Duration;
use domain::inventory::InventoryBatchCommand as IC;
use domain::values::*;
use domain::{Category, Nutrition, Product};
use event_schemas::inventory::ColdChain;
use event_schemas::{Actor, EventMetadata};
use store::{CommandError, StoreError};
use uuid::Uuid;

use write_side::WriteSide;

use Category::*;
use PricingUnit::*;

/// (sku, name, categories, price in cents, per, origin, kcal, cold chain, shelf life in days)
#[allow(clippy::type_complexity)]
const PRODUCTS: &[(
    &str,
    &str,
    &[Category],
    i64,
    PricingUnit,
    &str,
    u32,
    ColdChain,
    i64,
)] = &[
    (
        "APL-GALA",
        "Gala apples",
        &[Fruit],
        299,
        PerKg,
        "IT",
        52,
        ColdChain::Chilled,
        30,
    ),
    (
        "APL-GRSM",
        "Granny Smith apples",
        &[Fruit],
        319,
        PerKg,
        "FR",
        58,
        ColdChain::Chilled,
        30,
    ),
    (
        "PEA-CONF",
        "Conference pears",
        &[Fruit],
        349,
        PerKg,
        "BE",
        57,
        ColdChain::Chilled,
        14,
    ),
    (
        "BAN-CAV",
        "Cavendish bananas",
        &[Fruit, Imported],
        189,
        PerKg,
        "EC",
        89,
        ColdChain::Ambient,
        7,
    ),
    (
        "BAN-ORG",
        "Organic bananas",
        &[Fruit, Organic, Imported],
        259,
        PerKg,
        "DO",
        89,
        ColdChain::Ambient,
        7,
    ),
    (
        "ORA-NAVL",
        "Navel oranges",
        &[Fruit],
        249,
        PerKg,
        "ES",
        47,
        ColdChain::Ambient,
        21,
    ),
    (
        "LEM-PRIM",
        "Primofiore lemons",
        &[Fruit],
        399,
        PerKg,
        "ES",
        29,
        ColdChain::Ambient,
        21,
    ),
    (
        "LIM-TAH",
        "Tahiti limes",
        &[Fruit, Imported],
        29,
        PerUnit,
        "MX",
        30,
        ColdChain::Ambient,
        14,
    ),
    (
        "GRP-RED",
        "Red seedless grapes",
        &[Fruit],
        499,
        PerKg,
        "IT",
        69,
        ColdChain::Chilled,
        10,
    ),
    (
        "STR-250",
        "Strawberries, 250 g punnet",
        &[Fruit],
        299,
        PerUnit,
        "DE",
        32,
        ColdChain::Chilled,
        4,
    ),
    (
        "BLU-125",
        "Blueberries, 125 g punnet",
        &[Fruit, Imported],
        249,
        PerUnit,
        "PE",
        57,
        ColdChain::Chilled,
        8,
    ),
    (
        "RSP-125",
        "Raspberries, 125 g punnet",
        &[Fruit],
        279,
        PerUnit,
        "PT",
        52,
        ColdChain::Chilled,
        3,
    ),
    (
        "KIW-GRN",
        "Green kiwis",
        &[Fruit, Imported],
        35,
        PerUnit,
        "NZ",
        61,
        ColdChain::Chilled,
        20,
    ),
    (
        "MNG-KNT",
        "Kent mango",
        &[Fruit, Imported],
        179,
        PerUnit,
        "PE",
        60,
        ColdChain::Ambient,
        8,
    ),
    (
        "PIN-GOLD",
        "Golden pineapple",
        &[Fruit, Imported],
        349,
        PerUnit,
        "CR",
        50,
        ColdChain::Ambient,
        10,
    ),
    (
        "AVO-HASS",
        "Hass avocado",
        &[Fruit, Imported],
        129,
        PerUnit,
        "KE",
        160,
        ColdChain::Ambient,
        7,
    ),
    (
        "WML-SDLS",
        "Seedless watermelon",
        &[Fruit],
        149,
        PerKg,
        "ES",
        30,
        ColdChain::Ambient,
        14,
    ),
    (
        "PCH-YLW",
        "Yellow peaches",
        &[Fruit],
        449,
        PerKg,
        "IT",
        39,
        ColdChain::Chilled,
        6,
    ),
    (
        "CHR-SWT",
        "Sweet cherries",
        &[Fruit],
        1199,
        PerKg,
        "TR",
        63,
        ColdChain::Chilled,
        7,
    ),
    (
        "POM-WND",
        "Pomegranate",
        &[Fruit, Imported],
        199,
        PerUnit,
        "IL",
        83,
        ColdChain::Ambient,
        30,
    ),
    (
        "TOM-VINE",
        "Vine tomatoes",
        &[Vegetable],
        399,
        PerKg,
        "NL",
        18,
        ColdChain::Ambient,
        8,
    ),
    (
        "TOM-CHRY",
        "Cherry tomatoes, 250 g",
        &[Vegetable],
        229,
        PerUnit,
        "MA",
        18,
        ColdChain::Ambient,
        8,
    ),
    (
        "CUC-SNK",
        "Snack cucumbers",
        &[Vegetable],
        89,
        PerUnit,
        "NL",
        15,
        ColdChain::Chilled,
        10,
    ),
    (
        "PEP-RED",
        "Red bell pepper",
        &[Vegetable],
        549,
        PerKg,
        "ES",
        31,
        ColdChain::Chilled,
        12,
    ),
    (
        "CAR-BNCH",
        "Carrots, bunch",
        &[Vegetable],
        179,
        PerUnit,
        "DE",
        41,
        ColdChain::Chilled,
        14,
    ),
    (
        "CAR-ORG",
        "Organic carrots",
        &[Vegetable, Organic],
        249,
        PerKg,
        "DE",
        41,
        ColdChain::Chilled,
        21,
    ),
    (
        "POT-WAXY",
        "Waxy potatoes",
        &[Vegetable],
        129,
        PerKg,
        "DE",
        77,
        ColdChain::Ambient,
        60,
    ),
    (
        "POT-SWT",
        "Sweet potatoes",
        &[Vegetable, Imported],
        349,
        PerKg,
        "US",
        86,
        ColdChain::Ambient,
        30,
    ),
    (
        "ONI-YLW",
        "Yellow onions",
        &[Vegetable],
        149,
        PerKg,
        "NL",
        40,
        ColdChain::Ambient,
        60,
    ),
    (
        "GAR-WHT",
        "Garlic",
        &[Vegetable],
        59,
        PerUnit,
        "ES",
        149,
        ColdChain::Ambient,
        90,
    ),
    (
        "BRO-CAL",
        "Broccoli",
        &[Vegetable],
        179,
        PerUnit,
        "ES",
        34,
        ColdChain::Chilled,
        7,
    ),
    (
        "CAU-WHT",
        "Cauliflower",
        &[Vegetable],
        229,
        PerUnit,
        "FR",
        25,
        ColdChain::Chilled,
        7,
    ),
    (
        "SPN-BABY",
        "Baby spinach, 200 g",
        &[Vegetable],
        219,
        PerUnit,
        "IT",
        23,
        ColdChain::Chilled,
        5,
    ),
    (
        "LET-ICE",
        "Iceberg lettuce",
        &[Vegetable],
        129,
        PerUnit,
        "ES",
        14,
        ColdChain::Chilled,
        7,
    ),
    (
        "KAL-CUR",
        "Curly kale",
        &[Vegetable, Organic],
        299,
        PerKg,
        "DE",
        49,
        ColdChain::Chilled,
        7,
    ),
    (
        "ZUC-GRN",
        "Courgettes",
        &[Vegetable],
        299,
        PerKg,
        "IT",
        17,
        ColdChain::Chilled,
        10,
    ),
    (
        "AUB-BLK",
        "Aubergine",
        &[Vegetable],
        129,
        PerUnit,
        "ES",
        25,
        ColdChain::Chilled,
        10,
    ),
    (
        "ASP-GRN",
        "Green asparagus",
        &[Vegetable],
        1299,
        PerKg,
        "PE",
        20,
        ColdChain::Chilled,
        5,
    ),
    (
        "MSH-BRN",
        "Chestnut mushrooms",
        &[Mushroom],
        799,
        PerKg,
        "PL",
        22,
        ColdChain::Chilled,
        6,
    ),
    (
        "MSH-OYS",
        "Oyster mushrooms",
        &[Mushroom, Organic],
        1499,
        PerKg,
        "DE",
        33,
        ColdChain::Chilled,
        5,
    ),
    (
        "BSL-POT",
        "Basil, potted",
        &[Herb],
        199,
        PerUnit,
        "DE",
        23,
        ColdChain::Ambient,
        10,
    ),
    (
        "COR-BNCH",
        "Coriander, bunch",
        &[Herb, Imported],
        99,
        PerUnit,
        "IL",
        23,
        ColdChain::Chilled,
        5,
    ),
    (
        "MNT-BNCH",
        "Mint, bunch",
        &[Herb],
        99,
        PerUnit,
        "DE",
        44,
        ColdChain::Chilled,
        5,
    ),
    (
        "GNG-ROOT",
        "Ginger root",
        &[Vegetable, Imported],
        699,
        PerKg,
        "CN",
        80,
        ColdChain::Ambient,
        30,
    ),
];

const WAREHOUSES: &[&str] = &["WH-BER-1", "WH-HAM-1", "WH-MUC-1"];
const SUPPLIERS: &[&str] = &[
    "SUP-ALMERIA-COOP",
    "SUP-VENLO-FRESH",
    "SUP-BODENSEE-OBST",
    "SUP-LIMA-EXPORT",
];

/// What the demo loaded.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub products: usize,
    pub batches: usize,
}

/// Loads the demo catalogue and stock unless the catalogue already has
/// products. Returns what it loaded (nothing on a second run).
pub async fn load(write: &WriteSide) -> Result<Loaded, StoreError> {
    if !write.catalog.list().await?.is_empty() {
        return Ok(Loaded::default());
    }
    let now = write.clock.now();
    let meta = EventMetadata {
        occurred_at: now,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Actor::system("demo-data"),
        idempotency_key: None,
    };
    let mut loaded = Loaded::default();
    for (i, (sku, name, cats, cents, per, origin, kcal, cold, shelf_days)) in
        PRODUCTS.iter().enumerate()
    {
        let sku: Sku = sku.parse().expect("demo SKUs are valid");
        let product = Product::new(
            sku.clone(),
            name,
            cats.to_vec(),
            Money::new(*cents, Currency::EUR).expect("valid"),
            *per,
            origin,
            Nutrition {
                energy_kcal: *kcal,
                ..Nutrition::default()
            },
        )
        .expect("demo products are valid");
        write.catalog.upsert(&product).await?;
        loaded.products += 1;
        // Two batches per product per warehouse: an older one nearing its
        // expiry and a fresh one, so FEFO has something to choose.
        for (w, warehouse) in WAREHOUSES.iter().enumerate() {
            for age in 0..2i64 {
                let quantity = match per {
                    PerKg => Quantity::grams(20_000 + 5_000 * ((i + w) as u64 % 4)),
                    PerUnit => Quantity::units(40 + 10 * ((i + w) as u64 % 5)),
                }
                .expect("valid");
                let life = if age == 0 {
                    (shelf_days / 3).max(1)
                } else {
                    *shelf_days
                };
                let cost = cents * 6 / 10
                    * match per {
                        PerKg => (quantity.amount() / 1_000) as i64,
                        PerUnit => quantity.amount() as i64,
                    };
                let batch_id = BatchId::new();
                let cmd = IC::ReceiveBatch {
                    batch_id,
                    sku: sku.clone(),
                    warehouse_id: warehouse.parse().expect("valid"),
                    supplier_id: SUPPLIERS[(i + w) % SUPPLIERS.len()].parse().expect("valid"),
                    quantity,
                    expires_at: now + Duration::days(life) + Duration::hours(i as i64 % 12),
                    procurement_cost: Money::new(cost, Currency::EUR).expect("valid"),
                    cold_chain: *cold,
                };
                write
                    .batches
                    .execute(&batch_id.to_string(), cmd, &meta)
                    .await
                    .map_err(|e| match e {
                        CommandError::Store(s) => s,
                        other => StoreError::Persistence(other.to_string()),
                    })?;
                loaded.batches += 1;
            }
        }
    }
    Ok(loaded)
}
