//! A deterministic, realistic catalog: the same seed always gives the same
//! rows, so tests and benchmarks can name products by id.

/// How much to generate.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    pub products: u32,
    pub vendors: u32,
    pub seed: u64,
    /// Processed images (as `media` holds them) products may show, each
    /// product one to three of them; none when empty.
    pub pictures: Vec<serde_json::Value>,
}

impl Default for SeedConfig {
    fn default() -> Self {
        SeedConfig {
            products: 10_000,
            vendors: 200,
            seed: 1,
            pictures: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Category {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub parent_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Vendor {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub country: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct Product {
    pub id: i64,
    pub slug: String,
    pub vendor_id: i64,
    pub title: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i64,
    pub media: Vec<serde_json::Value>,
    pub created_at: i64,
    pub category_ids: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct Generated {
    pub categories: Vec<Category>,
    pub vendors: Vec<Vendor>,
    pub products: Vec<Product>,
}

/// 10 departments of 9 sub-categories: 100 categories in all. Each
/// sub-category lists the nouns its products are named after, so a search
/// for "kettle" finds kettles in Kitchen.
/// A sub-category and the product nouns it sells.
type Subcategory = (&'static str, &'static [&'static str]);

const DEPARTMENTS: &[(&str, &[Subcategory])] = &[
    (
        "Kitchen",
        &[
            ("Cookware", &["Skillet", "Saucepan", "Dutch Oven"]),
            ("Knives", &["Chef Knife", "Paring Knife", "Bread Knife"]),
            (
                "Coffee",
                &["Coffee Grinder", "Pour-Over Kettle", "Espresso Cup"],
            ),
            ("Tea", &["Teapot", "Tea Infuser", "Kettle"]),
            ("Baking", &["Baking Sheet", "Loaf Pan", "Rolling Pin"]),
            ("Tableware", &["Dinner Plate", "Serving Bowl", "Salad Bowl"]),
            ("Glassware", &["Wine Glass", "Tumbler", "Carafe"]),
            ("Storage", &["Pantry Jar", "Bread Box", "Spice Rack"]),
            ("Utensils", &["Spatula", "Whisk", "Ladle"]),
        ],
    ),
    (
        "Home",
        &[
            ("Lighting", &["Desk Lamp", "Floor Lamp", "Pendant Light"]),
            ("Bedding", &["Duvet Cover", "Pillowcase", "Throw Blanket"]),
            ("Bath", &["Bath Towel", "Bath Mat", "Soap Dish"]),
            ("Decor", &["Vase", "Wall Clock", "Picture Frame"]),
            ("Rugs", &["Area Rug", "Runner Rug", "Doormat"]),
            ("Furniture", &["Side Table", "Bookshelf", "Armchair"]),
            (
                "Candles",
                &["Scented Candle", "Candle Holder", "Tealight Set"],
            ),
            ("Cleaning", &["Broom", "Dust Pan", "Scrub Brush"]),
            (
                "Organisation",
                &["Storage Basket", "Coat Hook", "Shoe Rack"],
            ),
        ],
    ),
    (
        "Garden",
        &[
            ("Planters", &["Planter", "Hanging Basket", "Window Box"]),
            ("Tools", &["Trowel", "Pruning Shears", "Garden Fork"]),
            ("Watering", &["Watering Can", "Garden Hose", "Sprinkler"]),
            (
                "Seeds",
                &["Herb Seed Kit", "Wildflower Seeds", "Tomato Seeds"],
            ),
            ("Furniture", &["Garden Bench", "Deck Chair", "Parasol"]),
            (
                "Lighting",
                &["Solar Lantern", "String Lights", "Path Light"],
            ),
            ("Birds", &["Bird Feeder", "Bird Bath", "Nest Box"]),
            ("Compost", &["Compost Bin", "Kitchen Caddy", "Leaf Sack"]),
            ("Greenhouse", &["Cold Frame", "Propagator", "Grow Light"]),
        ],
    ),
    (
        "Office",
        &[
            ("Notebooks", &["Notebook", "Sketchbook", "Planner"]),
            (
                "Pens",
                &["Fountain Pen", "Ballpoint Pen", "Mechanical Pencil"],
            ),
            ("Desks", &["Standing Desk", "Writing Desk", "Desk Mat"]),
            ("Chairs", &["Office Chair", "Kneeling Chair", "Footrest"]),
            (
                "Storage",
                &["File Box", "Magazine Holder", "Drawer Organiser"],
            ),
            ("Paper", &["Letter Paper", "Envelope Set", "Card Stock"]),
            ("Accessories", &["Stapler", "Tape Dispenser", "Paperweight"]),
            ("Bags", &["Laptop Sleeve", "Messenger Bag", "Backpack"]),
            (
                "Calendars",
                &["Wall Calendar", "Desk Calendar", "Wall Planner"],
            ),
        ],
    ),
    (
        "Outdoors",
        &[
            ("Camping", &["Tent", "Sleeping Bag", "Camp Stove"]),
            (
                "Hiking",
                &["Trekking Poles", "Hydration Pack", "Trail Map Case"],
            ),
            ("Climbing", &["Chalk Bag", "Climbing Rope", "Harness"]),
            ("Cycling", &["Bike Light", "Saddle Bag", "Bike Lock"]),
            ("Water", &["Water Bottle", "Water Filter", "Dry Bag"]),
            ("Navigation", &["Compass", "Headlamp", "Altimeter Watch"]),
            ("Fishing", &["Fishing Rod", "Tackle Box", "Fly Reel"]),
            ("Picnic", &["Picnic Blanket", "Cool Box", "Picnic Basket"]),
            ("Shelter", &["Tarp", "Hammock", "Bivvy Bag"]),
        ],
    ),
    (
        "Sports",
        &[
            ("Running", &["Running Vest", "Armband", "Race Belt"]),
            ("Yoga", &["Yoga Mat", "Yoga Block", "Meditation Cushion"]),
            ("Fitness", &["Kettlebell", "Dumbbell", "Resistance Band"]),
            ("Tennis", &["Tennis Racket", "Tennis Balls", "Grip Tape"]),
            (
                "Football",
                &["Football", "Goalkeeper Gloves", "Shin Guards"],
            ),
            ("Swimming", &["Swim Goggles", "Swim Cap", "Kickboard"]),
            ("Skating", &["Skateboard", "Roller Skates", "Knee Pads"]),
            ("Golf", &["Golf Balls", "Golf Glove", "Putter"]),
            (
                "Recovery",
                &["Foam Roller", "Massage Ball", "Stretch Strap"],
            ),
        ],
    ),
    (
        "Audio",
        &[
            ("Headphones", &["Headphones", "Earbuds", "Headphone Stand"]),
            (
                "Speakers",
                &["Bookshelf Speaker", "Portable Speaker", "Soundbar"],
            ),
            ("Turntables", &["Turntable", "Record Brush", "Slipmat"]),
            ("Radios", &["Radio", "Clock Radio", "Shortwave Radio"]),
            ("Cables", &["Audio Cable", "Speaker Wire", "Adapter"]),
            ("Microphones", &["Microphone", "Pop Filter", "Mic Stand"]),
            (
                "Amplifiers",
                &["Amplifier", "Headphone Amp", "Phono Preamp"],
            ),
            ("Instruments", &["Ukulele", "Harmonica", "Tambourine"]),
            ("Storage", &["Record Crate", "Cassette Case", "CD Rack"]),
        ],
    ),
    (
        "Apparel",
        &[
            ("Shirts", &["Oxford Shirt", "Linen Shirt", "Flannel Shirt"]),
            ("Knitwear", &["Wool Sweater", "Cardigan", "Beanie"]),
            ("Outerwear", &["Rain Jacket", "Down Jacket", "Gilet"]),
            ("Trousers", &["Chinos", "Jeans", "Work Trousers"]),
            ("Footwear", &["Sneakers", "Hiking Boots", "Slippers"]),
            ("Socks", &["Wool Socks", "Running Socks", "Ankle Socks"]),
            ("Accessories", &["Scarf", "Leather Belt", "Gloves"]),
            ("Bags", &["Tote Bag", "Duffel Bag", "Wallet"]),
            ("Sleepwear", &["Pyjamas", "Dressing Gown", "Sleep Mask"]),
        ],
    ),
    (
        "Beauty",
        &[
            ("Skincare", &["Face Cream", "Cleanser", "Serum"]),
            ("Haircare", &["Shampoo Bar", "Hair Oil", "Wooden Comb"]),
            ("Bath", &["Bath Salts", "Bath Bomb", "Body Wash"]),
            (
                "Shaving",
                &["Safety Razor", "Shaving Brush", "Shaving Soap"],
            ),
            (
                "Fragrance",
                &["Eau de Parfum", "Solid Perfume", "Room Spray"],
            ),
            ("Nails", &["Nail File", "Nail Brush", "Cuticle Oil"]),
            ("Tools", &["Hand Mirror", "Tweezers", "Makeup Brush"]),
            ("Suncare", &["Sun Cream", "After Sun", "Lip Balm"]),
            ("Wellness", &["Essential Oil", "Diffuser", "Heat Pack"]),
        ],
    ),
    (
        "Toys",
        &[
            ("Puzzles", &["Jigsaw Puzzle", "Puzzle Box", "Tangram"]),
            ("Games", &["Board Game", "Card Game", "Chess Set"]),
            (
                "Building",
                &["Building Blocks", "Marble Run", "Construction Kit"],
            ),
            ("Outdoor", &["Kite", "Frisbee", "Skipping Rope"]),
            ("Craft", &["Paint Set", "Modelling Clay", "Sticker Book"]),
            ("Plush", &["Teddy Bear", "Plush Rabbit", "Hand Puppet"]),
            (
                "Wooden",
                &["Wooden Train", "Stacking Rings", "Spinning Top"],
            ),
            ("Science", &["Telescope", "Microscope", "Crystal Kit"]),
            ("Music", &["Xylophone", "Toy Drum", "Music Box"]),
        ],
    ),
];

const ADJECTIVES: &[&str] = &[
    "Handcrafted",
    "Classic",
    "Compact",
    "Everyday",
    "Heritage",
    "Minimalist",
    "Rustic",
    "Nordic",
    "Vintage",
    "Modern",
    "Artisan",
    "Lightweight",
    "Sturdy",
    "Premium",
    "Organic",
    "Folding",
    "Travel",
    "Deluxe",
    "Essential",
    "Recycled",
];

const MATERIALS: &[&str] = &[
    "Walnut",
    "Oak",
    "Bamboo",
    "Cast Iron",
    "Stainless Steel",
    "Copper",
    "Ceramic",
    "Linen",
    "Wool",
    "Cotton",
    "Leather",
    "Stoneware",
    "Glass",
    "Brass",
    "Cork",
    "Hemp",
    "Porcelain",
    "Recycled Plastic",
    "Merino",
    "Canvas",
];

const COLOURS: &[&str] = &[
    "charcoal",
    "sage green",
    "ochre",
    "navy",
    "terracotta",
    "ivory",
    "slate grey",
    "forest green",
    "mustard",
    "natural",
];

const VENDOR_WORDS: &[&str] = &[
    "Northwind",
    "Harbor",
    "Alder",
    "Juniper",
    "Fjord",
    "Meadow",
    "Copperleaf",
    "Stonebridge",
    "Lumen",
    "Willow",
    "Kestrel",
    "Ember",
    "Saltmarsh",
    "Hollow",
    "Birch",
    "Quarry",
    "Tidal",
    "Orchard",
    "Cinder",
    "Moss",
];

const VENDOR_SUFFIXES: &[&str] = &[
    "Goods",
    "Supply Co.",
    "Workshop",
    "Studio",
    "Trading",
    "Makers",
    "& Sons",
    "Collective",
    "Atelier",
    "Outfitters",
];

const COUNTRIES: &[&str] = &["DE", "US", "SG", "FR", "GB", "JP", "SE", "NL", "IT", "CA"];

/// 2026-01-01T00:00:00Z: generated timestamps count forward from here.
const EPOCH: i64 = 1_767_225_600;

/// SplitMix64: tiny, fast and fully deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Generates the whole catalog in memory.
pub fn generate(config: &SeedConfig) -> Generated {
    let mut rng = Rng(config.seed);
    let mut categories = Vec::new();
    // (category id, department id, nouns) for every leaf category.
    let mut leaves: Vec<(i64, i64, &[&str], &str)> = Vec::new();
    let mut next_id = 1;
    for (dept, subs) in DEPARTMENTS {
        let dept_id = next_id;
        next_id += 1;
        categories.push(Category {
            id: dept_id,
            slug: slugify(dept),
            name: (*dept).to_string(),
            parent_id: None,
        });
        for (sub, nouns) in *subs {
            let id = next_id;
            next_id += 1;
            categories.push(Category {
                id,
                slug: format!("{}-{}", slugify(dept), slugify(sub)),
                name: format!("{dept} / {sub}"),
                parent_id: Some(dept_id),
            });
            leaves.push((id, dept_id, nouns, dept));
        }
    }

    let vendors: Vec<Vendor> = (1..=i64::from(config.vendors.max(1)))
        .map(|id| {
            let word = rng.pick(VENDOR_WORDS);
            let suffix = rng.pick(VENDOR_SUFFIXES);
            let name = format!("{word} {suffix} {id}");
            let country = rng.pick(COUNTRIES).to_string();
            Vendor {
                id,
                slug: slugify(&name),
                description: format!(
                    "{word} {suffix} is an independent maker shipping from {country} since {}.",
                    2000 + rng.below(26)
                ),
                name,
                country,
                created_at: EPOCH - 86_400 * (1 + rng.below(700) as i64),
            }
        })
        .collect();

    let products = (1..=i64::from(config.products))
        .map(|id| {
            let (leaf, dept, nouns, dept_name) = leaves[rng.below(leaves.len())];
            let noun = rng.pick(nouns);
            let adjective = rng.pick(ADJECTIVES);
            let material = rng.pick(MATERIALS);
            let colour = rng.pick(COLOURS);
            let vendor = &vendors[rng.below(vendors.len())];
            let title = format!("{adjective} {material} {noun}");
            let description = format!(
                "A {} {} {} in {colour}, made by {} for everyday use. \
                 Part of our {} range; care instructions and dimensions are on the label. \
                 Ships from {} within {} working days.",
                adjective.to_lowercase(),
                material.to_lowercase(),
                noun.to_lowercase(),
                vendor.name,
                dept_name.to_lowercase(),
                vendor.country,
                1 + rng.below(5),
            );
            // Log-uniform prices between 2.99 and 499.99 feel like a real shop.
            let price = (299.0 * (50_000.0f64 / 299.0).powf(rng.unit())) as i64;
            let price_minor = price - price % 100 + 99;
            let mut category_ids = vec![dept, leaf];
            if rng.below(5) == 0 {
                let (other, other_dept, _, _) = leaves[rng.below(leaves.len())];
                for c in [other_dept, other] {
                    if !category_ids.contains(&c) {
                        category_ids.push(c);
                    }
                }
            }
            let shown = 1 + rng.below(3);
            let media = match config.pictures.len() {
                0 => Vec::new(),
                n => (0..shown)
                    .map(|k| config.pictures[(id as usize * 7 + k * 3) % n].clone())
                    .collect(),
            };
            Product {
                id,
                slug: format!("{}-{id}", slugify(&title)),
                vendor_id: vendor.id,
                title,
                description,
                price_minor,
                currency: "USD".to_string(),
                stock: rng.below(250) as i64,
                media,
                created_at: EPOCH + id * 97 + rng.below(90) as i64,
                category_ids,
            }
        })
        .collect();

    Generated {
        categories,
        vendors,
        products,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic() {
        let cfg = SeedConfig {
            products: 50,
            vendors: 5,
            seed: 42,
            pictures: vec![serde_json::json!({"upload": 0, "variants": []})],
        };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.products[49].title, b.products[49].title);
        assert_eq!(a.products[49].price_minor, b.products[49].price_minor);
        let c = generate(&SeedConfig { seed: 43, ..cfg });
        assert_ne!(
            a.products.iter().map(|p| &p.title).collect::<Vec<_>>(),
            c.products.iter().map(|p| &p.title).collect::<Vec<_>>()
        );
    }

    #[test]
    fn default_shape_matches_the_spec() {
        let g = generate(&SeedConfig::default());
        assert_eq!(g.categories.len(), 100);
        assert_eq!(g.vendors.len(), 200);
        assert_eq!(g.products.len(), 10_000);
        let mut slugs: Vec<_> = g.products.iter().map(|p| &p.slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), 10_000, "product slugs are unique");
        assert!(
            g.products
                .iter()
                .all(|p| (299..=50_000).contains(&p.price_minor))
        );
        assert!(g.products.iter().all(|p| p.category_ids.len() >= 2));
    }

    #[test]
    fn slugify_collapses_punctuation() {
        assert_eq!(slugify("Pour-Over  Kettle & Co."), "pour-over-kettle-co");
    }
}
