import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- The assets a merchant accepts, when it does not accept every configured
    -- one: a JSON array of {"chain", "symbol"}, possibly empty (it accepts
    -- none). No row: every asset of every configured chain, which is what
    -- merchants created before this table keep.
    create table merchant_assets (
      merchant_id bigint primary key references merchants(id),
      accepted jsonb not null,
      updated_at timestamptz not null default now()
    );
  `.execute(db);
}
