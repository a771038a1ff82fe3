//! Demo data: a realistic produce catalogue, three warehouses, suppliers and
//! batches with staggered expiry dates. Loaded through the same command path
//! as everything else, so the demo history is real events.

use chrono::Duration;
use domain::inventory::InventoryBatchCommand as IC;
use domain::registry::{Contact, Zone};
use domain::values::*;
use domain::{Category, Nutrition, Product, Supplier, Warehouse};
use event_schemas::inventory::ColdChain;
use event_schemas::{Actor, EventMetadata};
use store::{CommandError, StoreError};
use uuid::Uuid;

use write_side::WriteSide;

use Category::*;
use PricingUnit::*;

/// Nutrition per 100 g: kcal, then protein, carbohydrate (fibre
/// included, as USDA counts it), sugars, fat and fibre in milligrams.
/// Values from USDA FoodData Central (SR Legacy), raw produce.
const fn n(
    kcal: u32,
    protein: u32,
    carbohydrate: u32,
    sugar: u32,
    fat: u32,
    fibre: u32,
) -> Nutrition {
    Nutrition {
        energy_kcal: kcal,
        protein_mg: protein,
        carbohydrate_mg: carbohydrate,
        sugar_mg: sugar,
        fat_mg: fat,
        fibre_mg: fibre,
    }
}

/// (sku, name, categories, price in cents, per, origin, nutrition, cold chain, shelf life in days)
#[allow(clippy::type_complexity)]
const PRODUCTS: &[(
    &str,
    &str,
    &[Category],
    i64,
    PricingUnit,
    &str,
    Nutrition,
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
        n(57, 250, 13680, 10370, 120, 2300),
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
        n(58, 440, 13610, 9590, 190, 2800),
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
        n(57, 360, 15230, 9750, 140, 3100),
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
        n(89, 1090, 22840, 12230, 330, 2600),
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
        n(89, 1090, 22840, 12230, 330, 2600),
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
        n(49, 910, 12540, 8500, 150, 2200),
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
        n(29, 1100, 9320, 2500, 300, 2800),
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
        n(30, 700, 10540, 1690, 200, 2800),
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
        n(69, 720, 18100, 15480, 160, 900),
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
        n(32, 670, 7680, 4890, 300, 2000),
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
        n(57, 740, 14490, 9960, 330, 2400),
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
        n(52, 1200, 11940, 4420, 650, 6500),
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
        n(61, 1140, 14660, 8990, 520, 3000),
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
        n(60, 820, 14980, 13660, 380, 1600),
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
        n(50, 540, 13120, 9850, 120, 1400),
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
        n(167, 1960, 8640, 300, 15410, 6800),
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
        n(30, 610, 7550, 6200, 150, 400),
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
        n(39, 910, 9540, 8390, 250, 1500),
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
        n(63, 1060, 16010, 12820, 200, 2100),
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
        n(83, 1670, 18700, 13670, 1170, 4000),
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
        n(18, 880, 3890, 2630, 200, 1200),
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
        n(18, 880, 3890, 2630, 200, 1200),
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
        n(15, 650, 3630, 1670, 110, 500),
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
        n(31, 990, 6030, 4200, 300, 2100),
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
        n(41, 930, 9580, 4740, 240, 2800),
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
        n(41, 930, 9580, 4740, 240, 2800),
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
        n(77, 2050, 17490, 820, 90, 2100),
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
        n(86, 1570, 20120, 4180, 50, 3000),
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
        n(40, 1100, 9340, 4240, 100, 1700),
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
        n(149, 6360, 33060, 1000, 500, 2100),
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
        n(34, 2820, 6640, 1700, 370, 2600),
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
        n(25, 1920, 4970, 1910, 280, 2000),
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
        n(23, 2860, 3630, 420, 390, 2200),
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
        n(14, 900, 2970, 1970, 140, 1200),
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
        n(49, 4280, 8750, 2260, 930, 3600),
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
        n(17, 1210, 3110, 2500, 320, 1000),
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
        n(25, 980, 5880, 3530, 180, 3000),
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
        n(20, 2200, 3880, 1880, 120, 2100),
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
        n(22, 2500, 4300, 1720, 100, 600),
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
        n(33, 3310, 6090, 1110, 410, 2300),
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
        n(23, 3150, 2650, 300, 640, 1600),
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
        n(23, 2130, 3670, 870, 520, 2800),
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
        n(44, 3290, 8410, 0, 730, 6800),
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
        n(80, 1820, 17770, 1700, 750, 2000),
        ColdChain::Ambient,
        30,
    ),
];

/// (id, name, street, postal code, city, storage zones)
#[allow(clippy::type_complexity)]
const WAREHOUSES: &[(&str, &str, &str, &str, &str, &[(&str, ColdChain)])] = &[
    (
        "WH-BER-1",
        "Berlin Mitte fulfilment centre",
        "Invalidenstraße 116",
        "10115",
        "Berlin",
        &[
            ("AMB-A", ColdChain::Ambient),
            ("CHL-A", ColdChain::Chilled),
            ("CHL-B", ColdChain::Chilled),
            ("FRZ-A", ColdChain::Frozen),
        ],
    ),
    (
        "WH-HAM-1",
        "Hamburg port fulfilment centre",
        "Großer Grasbrook 9",
        "20457",
        "Hamburg",
        &[("AMB-A", ColdChain::Ambient), ("CHL-A", ColdChain::Chilled)],
    ),
    (
        "WH-MUC-1",
        "Munich west fulfilment centre",
        "Landsberger Straße 110",
        "80339",
        "München",
        &[("AMB-A", ColdChain::Ambient), ("CHL-A", ColdChain::Chilled)],
    ),
];

/// (id, name, contact, email, phone)
const SUPPLIERS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "SUP-ALMERIA-COOP",
        "Cooperativa Hortofrutícola de Almería",
        "Lucía Fernández",
        "ventas@almeria-coop.example",
        "+34950123456",
    ),
    (
        "SUP-VENLO-FRESH",
        "Venlo Fresh B.V.",
        "Daan de Vries",
        "orders@venlofresh.example",
        "+31771234567",
    ),
    (
        "SUP-BODENSEE-OBST",
        "Obstgenossenschaft Bodensee eG",
        "Anna Maier",
        "vertrieb@bodensee-obst.example",
        "+497541123456",
    ),
    (
        "SUP-LIMA-EXPORT",
        "Lima Export S.A.C.",
        "Carlos Quispe",
        "export@lima-export.example",
        "+5114123456",
    ),
];

/// Registers the demo warehouses and suppliers, unless some warehouse is
/// registered already. Returns how many warehouses it registered.
pub async fn register(write: &WriteSide) -> Result<usize, StoreError> {
    if !write.catalog.warehouses().await?.is_empty() {
        return Ok(0);
    }
    for (id, name, street, postal, city, zones) in WAREHOUSES {
        let warehouse = Warehouse::new(
            id.parse().expect("demo ids are valid"),
            name.parse().expect("valid"),
            Address::new(name, street, None, city, postal, "DE").expect("valid"),
            zones
                .iter()
                .map(|(code, storage)| Zone {
                    code: code.parse().expect("valid"),
                    storage: *storage,
                })
                .collect(),
        )
        .expect("demo warehouses are valid");
        write.catalog.register_warehouse(&warehouse).await?;
    }
    for (id, name, contact, email, phone) in SUPPLIERS {
        let supplier = Supplier {
            id: id.parse().expect("demo ids are valid"),
            name: name.parse().expect("valid"),
            contact: Contact::new(contact.parse().expect("valid"), email, Some(phone))
                .expect("demo contacts are valid"),
        };
        write.catalog.register_supplier(&supplier).await?;
    }
    Ok(WAREHOUSES.len())
}

/// What the demo loaded.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub products: usize,
    pub batches: usize,
}

/// Loads the demo catalogue and stock unless the catalogue already has
/// products. Returns what it loaded (nothing on a second run).
pub async fn load(write: &WriteSide) -> Result<Loaded, StoreError> {
    register(write).await?;
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
    for (i, (sku, name, cats, cents, per, origin, nutrition, cold, shelf_days)) in
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
            *nutrition,
        )
        .expect("demo products are valid");
        write.catalog.upsert(&product).await?;
        loaded.products += 1;
        // Two batches per product per warehouse: an older one nearing its
        // expiry and a fresh one, so FEFO has something to choose.
        for (w, (warehouse, ..)) in WAREHOUSES.iter().enumerate() {
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
                    supplier_id: SUPPLIERS[(i + w) % SUPPLIERS.len()]
                        .0
                        .parse()
                        .expect("valid"),
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
