//! The service catalogue: seeded from `Catalog::seed()`, read whole.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use yixin_domain::{Catalog, Category};

use crate::convert;
use crate::entity::{service, service_category};
use crate::error::StoreError;
use crate::store::Store;

/// Upserts the seed catalogue. Services that left the seed are marked
/// inactive, never deleted (old orders refer to them); categories stay.
pub(crate) async fn seed(db: &impl ConnectionTrait) -> Result<(), StoreError> {
    let catalog = Catalog::seed();

    let categories = catalog
        .categories
        .iter()
        .map(|c| service_category::ActiveModel {
            code: Set(c.code.clone()),
            name_zh: Set(c.name_zh.clone()),
            name_en: Set(c.name_en.clone()),
            sort: Set(c.sort),
        });
    service_category::Entity::insert_many(categories)
        .on_conflict(
            OnConflict::column(service_category::Column::Code)
                .update_columns([
                    service_category::Column::NameZh,
                    service_category::Column::NameEn,
                    service_category::Column::Sort,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;

    let services = catalog.services.iter().map(|s| service::ActiveModel {
        code: Set(s.code.clone()),
        category_code: Set(s.category_code.clone()),
        name_zh: Set(s.name_zh.clone()),
        name_en: Set(s.name_en.clone()),
        duration_min: Set(i64::from(s.duration_min)),
        price_cents: Set(i64::from(s.price_cents)),
        required_skills: Set(convert::skills_to_json(&s.required_skills)),
        active: Set(s.active),
        requirements: Set(serde_json::to_value(&s.requirements).ok()),
        clinical: Set(Some(convert::to_json(&s.clinical))),
    });
    service::Entity::insert_many(services)
        .on_conflict(
            OnConflict::column(service::Column::Code)
                .update_columns([
                    service::Column::CategoryCode,
                    service::Column::NameZh,
                    service::Column::NameEn,
                    service::Column::DurationMin,
                    service::Column::PriceCents,
                    service::Column::RequiredSkills,
                    service::Column::Active,
                    service::Column::Requirements,
                    service::Column::Clinical,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;

    let codes: Vec<String> = catalog.services.iter().map(|s| s.code.clone()).collect();
    service::Entity::update_many()
        .col_expr(service::Column::Active, Expr::value(false))
        .filter(service::Column::Code.is_not_in(codes))
        .filter(service::Column::Active.eq(true))
        .exec(db)
        .await?;
    Ok(())
}

impl Store {
    /// The whole catalogue, inactive services included: categories by
    /// `sort`, services by their category's `sort`, then code.
    pub async fn catalog(&self) -> Result<Catalog, StoreError> {
        let categories: Vec<Category> = service_category::Entity::find()
            .order_by_asc(service_category::Column::Sort)
            .order_by_asc(service_category::Column::Code)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::category)
            .collect();
        let mut services = service::Entity::find()
            .order_by_asc(service::Column::Code)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::service)
            .collect::<Result<Vec<_>, _>>()?;
        let rank = |code: &str| categories.iter().position(|c| c.code == code);
        services.sort_by_key(|s| rank(&s.category_code));
        Ok(Catalog {
            categories,
            services,
        })
    }
}
